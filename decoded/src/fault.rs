//! A fault-injection hook, for the supervisor's poison-record tests: when the environment
//! variable `TELEMETRY_FAULT_PANIC_ON` is set, decoded panics on any payload that contains its
//! value, as a decoder bug triggered by one message would. Unset, which is how decoded runs in
//! production, it costs one branch per message. The variable is read once, at start-up.

/// The hook: the byte string that makes decoded panic, if any.
#[derive(Debug, Default, Clone)]
pub struct FaultHook(Option<Vec<u8>>);

impl FaultHook {
    /// Reads `TELEMETRY_FAULT_PANIC_ON`.
    pub fn from_env() -> FaultHook {
        FaultHook(
            std::env::var_os("TELEMETRY_FAULT_PANIC_ON")
                .map(|v| v.into_encoded_bytes())
                .filter(|v| !v.is_empty()),
        )
    }

    /// Panics if the hook is armed and `payload` contains its trigger.
    #[inline]
    pub fn check(&self, payload: &[u8]) {
        if let Some(trigger) = &self.0 {
            if payload.windows(trigger.len()).any(|w| w == trigger.as_slice()) {
                panic!("fault injection: payload contains the TELEMETRY_FAULT_PANIC_ON trigger");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unarmed_it_never_panics_and_armed_it_panics_only_on_the_trigger() {
        FaultHook::default().check(b"POISON");
        let hook = FaultHook(Some(b"POISON".to_vec()));
        hook.check(b"healthy payload");
        assert!(std::panic::catch_unwind(|| hook.check(b"{\"d\":\"POISON\"}")).is_err());
    }
}
