"""Executors: the only I/O of the playbooks package (webhooks; Kafka and Grafana live
with the hosts that own those clients). They never block the caller."""

# The longest wait between two webhook attempts, seconds (``webhook.WebhookExecutor``);
# here, without the HTTP client, so the settings can bound their backoff by it.
MAX_BACKOFF = 30.0
