"""The ingest edge: MQTT and HTTP (citybrain's schema and NGSI-v2) into ``readings/1`` packs.

``mapping`` and ``ngsi`` are pure (a message in, reading documents or an ``EventError``
out); ``publisher`` is the only Kafka code, ``mqtt`` the only MQTT code and ``http`` the
only web server.
"""
