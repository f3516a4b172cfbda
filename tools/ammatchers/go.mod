module citybrain/tools/ammatchers

go 1.21

require (
	github.com/go-kit/log v0.2.1
	github.com/prometheus/alertmanager v0.27.0
)

require (
	github.com/go-logfmt/logfmt v0.5.1 // indirect
	github.com/prometheus/common v0.46.0 // indirect
)
