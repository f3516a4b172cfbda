"""The ingest edge: MQTT and HTTP (citybrain's schema and NGSI-v2) into ``readings/1`` packs.

``mapping`` and ``ngsi`` are pure (a message in, reading documents or an ``EventError``
out); ``publisher`` is the only Kafka code, ``mqtt`` the only MQTT code and ``http`` the
only web server.
"""

# A message's bytes at most by default: an HTTP body (``--max-body``, 413 past it) and an
# MQTT payload (``--max-payload``, dead-lettered ``too_large`` past it). A reading is a
# number or a small JSON object; a megabyte holds thousands. Kept here, free of imports,
# for the stack's broker config (citybrain/stack/mosquitto.py).
MAX_PAYLOAD = 1024 * 1024
