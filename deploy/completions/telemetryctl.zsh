#compdef telemetryctl
# zsh completion for telemetryctl(1)
_arguments \
  '--config[configuration file]:file:_files -g "*.toml"' \
  '--prefix[segment prefix]:prefix:' \
  '--json[print JSON]' \
  '--watch[refresh with rates]' \
  '--count[number of refreshes]:count:' \
  '--interval-ms[milliseconds between refreshes]:ms:' \
  '--heartbeat-timeout-ms[heartbeat limit for status]:ms:' \
  '(- *)'{-h,--help}'[print the usage]' \
  '(- *)'{-V,--version}'[print the version]' \
  '1:command:(stats status restart)' \
  '2:stage:(ingestd decoded aggd emitd)'
