//! [`Instances`]: the pipelines a merger waits for. Each pipeline publishes a *watermark* after
//! every emission (the end of the window it has published every partial of), which doubles as
//! its heartbeat. A window end is complete once every live pipeline's watermark has reached it.
//! A pipeline silent for `timeout_ms` stops being waited for (and is counted), and is waited for
//! again from its next message.

use std::collections::BTreeMap;

/// One pipeline, as the merger knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Instance {
    /// Every partial of a window ending at or before this has been published (0: none yet).
    watermark_ms: u64,
    /// When the merger last heard from it (a watermark or a partial).
    seen_ms: u64,
    /// False once it was silent for the timeout (until it is heard from again).
    live: bool,
}

/// The pipelines of a fleet and their watermarks.
///
/// ```
/// use telemetry_merge::Instances;
/// let mut i = Instances::new(10_000);
/// i.watermark("edge-a", 60_000, 0);
/// i.watermark("edge-b", 55_000, 0);
/// assert_eq!(i.complete_through(), Some(55_000), "the slower one holds the fleet back");
/// assert_eq!(i.expire(10_001), vec!["edge-a".to_string(), "edge-b".to_string()]);
/// assert_eq!(i.complete_through(), None, "nobody is live");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Instances {
    timeout_ms: u64,
    by_name: BTreeMap<String, Instance>,
}

impl Instances {
    /// No pipeline yet; one silent for `timeout_ms` is not waited for.
    pub fn new(timeout_ms: u64) -> Instances {
        Instances {
            timeout_ms,
            by_name: BTreeMap::new(),
        }
    }

    fn heard(&mut self, instance: &str, now_ms: u64) -> &mut Instance {
        let i = self.by_name.entry(instance.to_owned()).or_insert(Instance {
            watermark_ms: 0,
            seen_ms: now_ms,
            live: true,
        });
        (i.seen_ms, i.live) = (i.seen_ms.max(now_ms), true);
        i
    }

    /// `instance` published every partial of the windows ending at or before `window_end_ms`.
    pub fn watermark(&mut self, instance: &str, window_end_ms: u64, now_ms: u64) {
        let i = self.heard(instance, now_ms);
        i.watermark_ms = i.watermark_ms.max(window_end_ms);
    }

    /// A partial came from `instance`: it is live (and waited for, from no watermark, if new).
    pub fn partial(&mut self, instance: &str, now_ms: u64) {
        self.heard(instance, now_ms);
    }

    /// Stops waiting for the pipelines silent for the timeout by `now_ms`; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let timeout = self.timeout_ms;
        self.by_name
            .iter_mut()
            .filter(|(_, i)| i.live && now_ms.saturating_sub(i.seen_ms) >= timeout)
            .map(|(name, i)| {
                i.live = false;
                name.clone()
            })
            .collect()
    }

    /// The latest window end every live pipeline has published all of: the least live
    /// watermark. `None` if no pipeline is live.
    pub fn complete_through(&self) -> Option<u64> {
        self.by_name.values().filter(|i| i.live).map(|i| i.watermark_ms).min()
    }

    /// Pipelines waited for now.
    pub fn live(&self) -> usize {
        self.by_name.values().filter(|i| i.live).count()
    }
}
