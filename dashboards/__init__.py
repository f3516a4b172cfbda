"""Grafana dashboards as code (grafana-foundation-sdk), their provisioning files and the
generator that writes them to ``dashboards/generated/``. Never edit the JSON by hand."""
