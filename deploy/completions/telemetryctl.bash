# bash completion for telemetryctl(1)
_telemetryctl() {
    local cur prev words cword
    _init_completion || return
    case "$prev" in
        --config) _filedir toml; return ;;
        --prefix|--count|--interval-ms|--heartbeat-timeout-ms) return ;;
        restart) COMPREPLY=($(compgen -W "ingestd decoded aggd emitd" -- "$cur")); return ;;
    esac
    local command="" w
    for w in "${words[@]:1:cword-1}"; do
        case "$w" in stats|status|restart) command=$w ;; esac
    done
    local options="--config --prefix --help --version"
    case "$command" in
        stats) options="$options --json --watch --count --interval-ms" ;;
        status) options="$options --heartbeat-timeout-ms" ;;
        "") options="$options stats status restart" ;;
    esac
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
} && complete -F _telemetryctl telemetryctl
