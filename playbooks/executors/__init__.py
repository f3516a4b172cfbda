"""Executors: the only I/O of the playbooks package (webhooks; Kafka and Grafana live
with the hosts that own those clients). They never block the caller."""
