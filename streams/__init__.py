"""citybrain's stream processors: a faust app wiring Kafka topics and tables to pure handlers."""
