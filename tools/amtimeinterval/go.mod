module citybrain/tools/amtimeinterval

go 1.18

require (
	github.com/prometheus/alertmanager v0.25.0
	gopkg.in/yaml.v2 v2.4.0
)
