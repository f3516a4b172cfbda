"""Thirteen changes to faust's consumer (the last to aiokafka's fetcher under it), one to its
memory store, two to its table manager and its recovery, one to aiokafka's group
coordinator, and one keeping aiokafka's consumer to its own thread (18), written against
faust-streaming 0.15.3 and aiokafka 0.14.0 exactly.

Most are in one code path, ``faust.transport.consumer.Consumer._drain_messages`` (the
fetcher task that hands fetched records to the streams), and the seek it falls back on
(``perform_seek``); they are shaped like an upstream pull request: ``install()`` swaps
four methods of ``Consumer`` and nothing else. The fourth sets the consumer's fetch
wait (``set_fetch_max_wait``), independently of the others.

1. **Stale generations are dropped, never acked** (the commit stall, issue 12 item 4).
   faust 0.15.3 stamps each message with the consumer generation when it leaves
   ``getmany``, then awaits (``_add_gap``, an inline ``commit``, ``wait_first``'s tasks,
   the conductor's flow control) before the stream sees it. A rebalance in one of those
   awaits seeks the partition back to its committed offset; the stream then skips the
   stale message *and acks it* (``Stream._py_aiter``: ``do_ack or value is
   skipped_value``), and ``_drain_messages`` sets the read offset to it. The acked list
   then starts past the committed offset and the re-read messages below the read offset
   are dropped as already seen: a hole at the head of ``_acked`` that nothing fills, so
   ``_new_offset`` returns None forever. Here the generation (and ``flow_active``) is
   checked again after every await; a stale message is dropped without touching the read
   offset, ``ack`` ignores a message of an older generation, and the inline commit runs
   before the check, so no commit comes between the check and the hand-over (the
   hand-over itself no longer goes through ``wait_first``: awaiting the conductor's
   callback directly does not leave the task unless a queue is full or flow is
   suspended, and those cases are covered by the two rules above).

2. **A batch drain** (issue 14): for the topics registered with a ``BatchDrain``, each
   partition's records of one fetch become one ``Batch`` handed to the agent through a
   small queue, instead of one ``Event`` per message through the conductor, the channel
   queue and the stream iterator (about 190 of faust's ~200 µs per message, measured in
   docs/benchmarks.md). The agent processes the batch and acks it as a whole
   (``async with batch:``); an exception leaves it unacked, so no commit passes it.
   Consumer-group membership, offsets and commits (``_acked``, ``_acked_index``,
   ``_n_acked``, ``_committed_offset``, gaps), rebalances (``wait_empty`` waits for the
   batch in hand, which is tracked in ``_unacked_messages``), tables and their
   changelogs, the web server and timers stay faust's. A batch keeps aiokafka's fetched
   records as they are and builds faust's ``Message`` (``_to_message``) only for a
   record something asks for -- its last at once, which stands for the batch in
   ``_unacked_messages``, and a dead letter's; the agent reads the batch's values,
   offsets and timestamps off the records (``Messages.columns``; about 1.2 us a message
   less, docs/benchmarks.md). For batch topics faust's
   message counters are updated once per batch (``on_batch_in`` of
   ``streams.faust_metrics.CachedLabelsMonitor``); its per-event stream sensors
   (``on_stream_event_in/out``) are not called, as no ``Event`` is made; the partition's
   ``stream_inbound_time``, which faust's consumer reads to tell a stalled stream, is set
   per batch by ``on_batch_in`` too.

3. **A seek back to the committed offset also rewinds a partition with no commit**
   (``perform_seek``). Records fetched while the flow is stopped (a rebalance) are
   dropped and the partitions are seeked back to their committed offsets, at once and
   again when recovery ends. aiokafka's ``seek_to_committed`` seeks only partitions
   whose committed offset is above 0, so a partition that was never committed -- a
   worker SIGKILLed before its first commit, its partition taken over -- kept the
   position after the dropped records: they were never processed, and their sensors
   warmed up again from the next reading (found by the SIGKILL failover tests). Such a
   partition now goes back to where the reset policy starts it (the app's
   ``consumer_auto_offset_reset`` is ``earliest``: the log start), as on a first fetch.
   That seek runs on the consumer's own thread, as every seek here does: aiokafka's
   consumer is not thread-safe, and faust's ``Consumer._seek`` (which it first used)
   seeks from the event loop's thread, deleting a partition's buffered records while
   the consumer thread's ``fetched_records`` walked them (``KeyError``: the fetcher,
   and with it the worker, crashed at a SIGKILL takeover, one run in three under load).
   Changelog partitions are left to table recovery, which seeks them itself -- except
   that a changelog's records dropped that way are read again from the first dropped
   (``_rewind_changelogs``): records fetched between recovery's seek and its resuming
   the flow were otherwise lost, and recovery waited for them forever.

4. **A shorter fetch wait** (``set_fetch_max_wait``, ``CITYBRAIN_FETCH_MAX_WAIT``): faust
   builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting for it.
   aiokafka keeps one fetch in flight per broker and leaves a partition out of a fetch
   while its earlier records are still buffered: a fetch for the quiet topics, sent
   while the readings partitions still had records buffered, waits up to that long at
   the broker for data that does not come, and the readings' next fetch waits behind
   it. A py-spy profile of a catching-up worker (docs/benchmarks.md) had both of its
   threads idle for half-second stretches, a third of the time. The wrapped
   ``AIOKafkaConsumerThread._create_worker_consumer`` sets the consumer's
   ``_fetch_max_wait_ms`` before it starts (aiokafka's ``start`` hands it to its
   fetcher).

5. **Records of a partition paused during the fetch are read again** (in the replaced
   ``_drain_messages``). faust 0.15.3 hands on only the records of partitions still in
   its live ``_active_partitions`` set, which ``pause_partitions`` changes while a fetch
   is in flight, and drops the others with the position already past them. They are now
   seeked back to their first dropped record (``_rewind``, the same check as change 3's
   changelogs), as are the undelivered records of a fetch that goes stale (change 6).

6. **No record fetched before a seek to the committed offsets is delivered after it.**
   Recovery resumes the flow, then seeks the stream partitions to their committed
   offsets (``Recovery._resume_streams``) with no new generation: records the drain held
   from the old position were delivered after the seek, and the first of them opened a
   gap over everything between the committed offset and it. ``perform_seek`` now counts
   its seeks (before and after), and a fetch that began before a seek counted since is
   not delivered further (``_stale``); its records are rewound as in change 5. Nor is a
   fetch that began while such a seek was under way (the count odd), even if it returned
   before the seek ended: its records may come from either side of the seek, which sets
   the next offsets (change 7) only as it ends, so delivering them left the position
   past the next offset -- the hole after "Seek stream partitions to committed offsets"
   that trial 15 saw and could not place.

7. **A record past the next expected offset of a stream partition is never committed
   over** (``order_verdict``). faust treats every jump in offsets as a compacted-away
   gap (``_add_gap``) and commits over it; its check is also off by one right after a
   seek (the read offset then means "next", not "last"). The drain keeps each stream
   partition's next offset (set by ``perform_seek`` and by every delivery); on a jump it
   seeks back and reads the passed-over records again, once: if the same hole comes
   back they are not in the log (retention, transaction markers) and pass as faust's
   gap. tests/integration/test_restart_storm.py found the fault: commands flowing while
   two workers were SIGKILLed and restarted in turn lost some in each of five runs
   (10,356 of 18,963 in the first; with change 6 alone still 11 and 298). With changes
   6 and 7, none: the drain logged "passed over ... reading them again" twice, when a
   partition's position after a rebalance was past its committed offset. That is the
   kind of trial 11's two lost commands (committed over by a later record's gap). The
   mark of a hole read again (``_reread_from``) is forgotten at every seek to the
   committed offsets: a mark left from an earlier generation that began at the same
   committed offset (no commit between) passed a new hole there as a gap, unread
   (tests/integration/test_freeze_storm.py lost three or four commands so in 1 run of
   5 to 7 under load, 2026-12-02).

8. **A commit never passes the message at the committed offset** (``_new_offset``).
   faust commits one past the first run of acked offsets once it starts no more than
   one past the committed offset (``min(acked) - committed > 1`` refuses): but Kafka's
   committed offset is the next to read, so a message right at it still in hand (a
   batch that raised, an event still being processed) was committed over when the one
   after it was acked; and a partition never committed had no check at all. The run
   must now start at the committed offset (or, never committed, at the log start
   ``perform_seek`` found).

9. **A quiet partition's passed-over records are read again too** (``_sweep``). Change 7
   sees passed-over records only when a later record of the partition arrives; a
   partition that goes quiet after the hole kept them unprocessed until the next
   record, however late (trial 15: after a rebalance an alerts partition stayed
   committed at 14 of 24 for 100 s, and a citizens' group never got its run; one more
   message released it). Once a second, between fetches (every record returned by
   then is delivered or rewound), the drain compares each stream partition's position
   with its next offset; a position past it is the same hole, handled as change 7 does
   (read again once, then a gap), on the consumer's thread with no await between the
   check and the seek, and not at all while a seek to the committed offsets is under
   way. aiokafka's position is read from its subscription state
   (``_subscription.subscription.assignment.state_value(tp)``, ``has_valid_position``,
   ``position``), which never waits.

10. **A consumer the group has dropped hands nothing on** (``_membership_lost``). A
   worker frozen past its session timeout wakes still in its old generation as faust
   sees it (faust learns the new one only at its next assignment), though its first
   heartbeat is told the member is unknown and aiokafka resets its coordinator's
   generation to -1 at once. Records it fetched in that window were delivered and
   handled while their partitions were another worker's (the freeze storm's "handled by
   a woken worker before it rejoined", 1 run in 3 under load, 2026-12-02). A fetch is now
   stale also when aiokafka's coordinator generation differs from the app's; its
   records are rewound as in change 5 (the group's new owner reads them from the
   committed offset; this worker may read them again once it rejoins).

11. **Only committed records are read** (``read_committed``). faust builds its worker's
   aiokafka consumer with ``isolation_level="read_uncommitted"`` unless the app itself
   is exactly-once (``processing_guarantee``), which citybrain is not (its effects are
   idempotent instead, docs/operations.md). A field producer writing in transactions (a
   Kafka Connect exactly-once source, a Java gateway with ``transactional.id``) that
   aborts one leaves its records in the log: they were scored, alerted on and
   dead-lettered as if sent. The wrapped ``_create_worker_consumer`` sets aiokafka's
   ``_isolation_level`` to ``read_committed`` before it starts (aiokafka hands it to
   its fetcher, which then skips aborted batches and reads up to the last stable
   offset). Table changelogs are written by faust's own producer, outside transactions,
   so recovery reads them as before.

12. **A gap at the end of a partition is committed over** (``_new_offset``). A
   partition's last offsets may hold no record a consumer is given: a transaction's
   commit or abort marker (every transaction ends with one), an aborted transaction's
   records (change 11). Change 9 finds such a hole once the partition goes quiet and
   passes it as a gap, but faust merges only gaps below the last acked offset, and
   returns nothing at all when none is acked since the last commit: the committed
   offset stayed one short of the end of every partition a transactional producer
   wrote last (the group's lag, as ``kafka-consumer-groups`` shows it, 1 for good;
   the marker fetched again at every start). A gap
   that begins at or right after the acked run, or at the committed offset, is merged
   in now.

13. **An unreadable record batch costs only its own offsets** (``_unpack_records``,
   aiokafka's ``PartitionRecords``; aiokafka 0.14.0). A batch whose CRC does not match
   (bytes corrupted on a broker's disk; the broker serves them as they are) made
   aiokafka raise ``CorruptRecordException`` out of ``getmany``: the drain, and with it
   the worker, ended, at every restart again (a crash loop), and the good records
   fetched before it in the same fetch were passed over unprocessed. So did a record
   aiokafka cannot decode in a batch whose CRC holds (a header name that is not UTF-8,
   which Kafka's protocol forbids and its broker does not check: ``UnicodeDecodeError``);
   from that record on, the rest of its batch is unreadable the same way. Such a batch
   (its CRC held) is now read again from the fetch's bytes (``KeptMemoryRecords``, made
   by the fetcher in place of aiokafka's ``MemoryRecords``; ``_read_again`` frames it
   with aiokafka's pure-Python batch and reads its records by the protocol's v2 layout,
   header names as bytes): every record whose header names are UTF-8 is given as
   aiokafka would have given it, and each other one is an unreadable record of its own
   offset that keeps its key and value for its dead letter (t117: the nine records
   after one such header name in a batch were dead-lettered with it, bytes gone). Bytes
   that do not read even so are the rest of the batch, as below. Now, on a stream
   topic (not a table's changelog, whose corruption still stops the worker: a table
   cannot be recovered past a hole), the batch's offsets are handed on as *unreadable
   records*: no key, no value, ``headers`` an ``UnreadableRange`` naming the range and
   why. Every agent refuses a record without a value, so each goes the dead-letter way;
   ``Context.dead_letter`` sends one dead letter for the range (at its first offset,
   reason ``unreadable_batch``) and lets the rest pass, so the commit passes the range
   only once that dead letter is on Kafka, as for any refused message. The range ends
   where the next batch of the fetch begins, else at the batch's own last offset when
   that is plausible (``MAX_UNREADABLE_SPAN``), else it is one offset and the next fetch
   finds the rest. An error line names topic, partition and offset range.
   A batch whose *framing* is broken (its length field, bytes 8-11, below any batch's
   or running short so that what follows is no batch; a legacy magic byte, 0 or 1, on
   the fetch's first batch, by which aiokafka frames every batch of the fetch) made
   ``MemoryRecords.next_batch`` raise (``CorruptRecordException``, ``SystemError``):
   it was re-raised after the good batches before it, and the worker still ended at
   every start. aiokafka keeps the fetched bytes to itself, so where such a batch ends
   cannot be read: its first offset (the fetch position) is one unreadable record,
   reason ``record batch framing is broken (...)``, and the next fetch, from the offset
   after it, finds the rest one offset at a time; a legacy batch ends its fetch, so the
   batches behind it are framed afresh. The broker skips such a batch by its own length
   field, so the next fetch, from the offset after it, begins at the next batch: the
   offsets between (the rest of the broken batch) are one more range ("skipped by the
   broker with the batch at offset <n>, whose framing is broken"; ``_FRAMING_BROKE``,
   read once per fetch). A legacy batch has no ``base_offset``: its range is one offset
   (it failed with ``AttributeError``). Any other offsets no batch holds, between the
   fetch position (or the batch before) and a batch of a stream topic, are one more range
   ("no record batch holds them (the broker served the batch at offset <n> next: …)"):
   a broken length that swallowed the batches after it, which the broker then skips by
   that length, passed them as a gap when a fetch began after the broken batch (a worker
   that had committed past it, or one whose range ended at its own last offset), and the
   commit went past them unseen (helper t88). Stream topics are never compacted, and a
   transaction's markers and aborted records are batches too, so such offsets held
   records; a changelog's gaps are its compaction's and pass. Kafka 4.0.2 itself does
   not start on a length below 14 bytes in a segment (it walks the lengths at load), so
   on the real broker the magic byte is what reaches the client
   (``tests/integration/test_unreadable_batches.py``; docs/operations.md).

14. **A key citybrain deletes leaves nothing in the memory store**
   (``forget_recovered_key``). faust's memory ``Store`` notes the changelog partition of
   every key it recovers (``_key_partition``, filled by ``_create_batch_iterator``) and
   drops a note only when recovery itself reads the key's tombstone or when its partition
   is lost (``on_recovery_completed``). The groups and silences citybrain forgets after
   their retention are deleted outside recovery (``streams.tables``), so their notes stayed
   until the next restart: as many as the keys recovered at the last start. The note goes
   with the key now.

15. **The tables start without a fixed second's wait** (``start_tables_at_once``).
   faust's ``TableManager.on_start`` sleeps 1.0 s before it registers the tables'
   changelog channels and starts recovery, and the conductor subscribes to no topic until
   then: every worker start and restart (after a crash too) waited that second with
   nothing to wait for. citybrain adds every table in ``create_app``, before the worker
   starts (``TableManager.add`` refuses a table once the channels are registered), and
   faust starts the agents and the conductor before the table manager (its
   ``BootStrategy.server`` order), so nothing the sleep waited for is missing. The
   replacement is faust's method without the sleep.

16. **A static member leaves the group when it stops** (``leave_group_on_stop``). With
   static membership (``group.instance.id``, the worker's ``static_membership``), a worker
   SIGKILLed and restarted takes its place in the group at once instead of waiting for
   the group to expel its dead member (the session timeout): its partitions stay its own,
   with no rebalance. But aiokafka 0.14.0's ``GroupCoordinator._maybe_leave_group`` sends
   no LeaveGroup for a static member (a rolling restart's choice), so a worker stopped on
   purpose (``stack down``, SIGTERM, scale-in) left its partitions unread by the others
   for the session timeout. The replacement sends the same LeaveGroup (v0/v1, by member
   id, which Kafka honours for a static member too) whatever the membership: a stop moves
   the partitions at once, as before static membership; a crash's restart is the fast
   path (``tests/integration/test_restart_static.py``).

17. **A global table's changelog is read once at a start, not twice**
   (``read_changelogs_once``). citybrain's global tables (``silences``, ``firing``:
   ``synchronize_all_active_partitions``) have every changelog partition both active and
   standby on every worker. faust 0.15.3's recovery reads the active partitions to their
   highwater, then seeks the standby partitions to ``standby_offsets``
   (``Recovery._restart_recovery``, recovery.py:503-509), which its active read never
   moved: ``_slurp_changelogs`` counts a partition that is both in ``active_offsets``
   (recovery.py:854-857), so its standby offset stayed the log start's -1, and
   ``_seek_offsets`` seeks -1 as 0 (recovery.py:766-767). The whole changelog was read
   a second time, every record already applied and dropped again by the same offset
   check (recovery.py:870-874), and an entry written after the start waited for that
   read to reach it: 22-36 s with 9,990 silences stored (t135). The standby seek of a
   partition that is also active now starts at its active offset (the last record
   applied; faust's offsets are "last read", and that record is dropped by the same
   check): what the second read would have applied, and nothing else.
   Its partner, in the same hand-over: faust's changelog queue is a
   ``FlowControlQueue(clear_on_resume=True)`` (manager.py:112-115), and every
   ``app.flow_control.resume()`` empties it (mode's ``FlowControlEvent.resume``),
   including those recovery calls while a changelog is being read: after resuming the
   standby partitions (recovery.py:544-546, the queue then holding the active read's
   records past its last one) and once recovery completes (recovery.py:659, the queue
   then holding the standby read's first records). The consumer's read offset is past
   such records and nothing seeks a changelog partition back after recovery: an entry
   emptied out at recovery.py:659 was lost until the next restart. faust's second read
   from 0 mostly hid it (the read had not reached the new entries by then); starting
   where the first read ended would not. The changelog queue's ``clear`` now drops only
   events of an older consumer generation while the flow is running (a resume, after
   this generation's seeks: what is kept is the rest of this generation's reading, in
   order, and re-read records are dropped by recovery's offset check); at a revoke (the
   flow suspended) it empties the queue as faust does.

18. **The consumer's thread keeps its objects** (``keep_to_the_consumer_thread``, and
   ``_end_offset`` in the drain). faust runs aiokafka's consumer -- its fetcher
   (``_records``, ``fetched_records``), subscription state (the ``Assignment``, each
   partition's ``TopicPartitionState``) and coordinator -- on a thread of its own with
   its own loop (``AIOKafkaConsumerThread``, a mode ``ServiceThread``); aiokafka is
   not thread-safe. The rule here: anything that changes them, or walks a dict or set
   of theirs, runs on that thread through
   ``call_thread`` (every seek: changes 3, 5, 6, 7, 9 and ``_seek_on_thread``; change
   9's and the rewinds' position reads; ``Recovery._seek_offsets`` through faust's
   ``seek_wait``; faust's commit, fetch, ``seek_to_committed``, ``earliest_offsets``,
   ``position``); the event loop's thread only reads single attributes, each object
   once and kept (an ``Assignment`` never changes which partitions it holds: a
   rebalance makes a new one; ``assignment()`` is its frozenset; a partition state's
   ``highwater``, ``lso``, ``timestamp``, ``has_valid_position``, the coordinator's
   ``generation`` are attributes the thread sets whole). Four of faust's reaches broke
   it and are mended: ``Consumer.seek`` (``ThreadDelegateConsumer._seek``) called
   aiokafka's ``seek`` from the event loop's thread, the ``KeyError`` of change 3 for
   any caller (now ``call_thread``); the drain's end offset per partition and fetch
   (faust's ``highwater``, aiokafka's) asserted ``is_assigned`` and then read the
   assignment again, so a rebalance or a new subscription between the reads raised
   ``AssertionError`` or ``AttributeError`` out of the drain (faust reads it after its
   flow and generation checks; the batch drain read it first; ``_end_offset`` reads it
   once, None when not known); ``Consumer.assignment`` (aiokafka's
   ``assigned_partitions``) read the current subscription three times, so faust's
   conductor subscribing anew between the reads gave ``None.tps`` (``_assignment``
   reads it once); and faust's partition checks
   (``verify_event_path``, ``verify_recovery_event_path``, on a timer, over an
   assignment read before awaiting) said a moved partition "not fetched since start" at
   error level, raised ``AttributeError`` when the assignment was replaced between
   their two reads of it, and ``AssertionError`` reading ``state.position`` of a
   partition whose position the thread was resetting -- out of faust's timer, which
   crashed the consumer (``_verifier``: a moved partition is let go, a resetting one
   gets the fetch check only). The reverse reaches, the consumer's thread touching the
   event loop's objects, are left as faust has them, being single reads and writes of
   things the event loop never walks: ``_seek_wait`` sets and deletes entries of the
   consumer's ``_read_offset``; the rebalance listener sets ``app.consumer_generation_id``
   and calls ``app.on_rebalance_start``, whose sensors clear the monitor's offset dicts
   (walked only by faust's debug ``/stats`` page, which the worker does not serve) and
   remove faust's per-topic and per-partition series under prometheus_client's locks
   (``streams.faust_metrics`` forgets its cached children of them then); the fetch
   reads ``flow_active`` and tests membership in faust's live ``_active_partitions``.

19. **A member the group dropped writes no state it staged** (``group_dropped``,
   ``read_whole_again``; used by ``streams.tables.coalesce_changelog``). faust flushes its
   producer at a revocation, and citybrain's wrapped flush writes every sensor state and
   corroboration mark staged since the last commit first. aiokafka 0.14.0 has no "lost"
   callback (the Java client's ``onPartitionsLost``): a worker frozen past its session
   (SIGSTOP, swap) wakes, its first heartbeat is told the member is unknown, aiokafka
   resets its coordinator's generation to -1 and calls ``on_partitions_revoked`` before
   joining again, so faust flushed the staged states of partitions another worker had
   owned for the whole freeze, after that worker's newer ones: the changelog's last
   entry of each such sensor was the older state, the one a restart recovered (t192:
   ``tests/integration/test_frozen_writes.py``, every sensor's last entry 20 readings
   behind). A coordinator generation of -1 while the coordinator is not closing (a stop's
   LeaveGroup resets it too) is the group saying this member is gone: its staged keys are
   dropped, not written, the tables' values of every partition forgotten and their
   changelog partitions revoked from faust's ``Recovery`` (``revoke``, what faust does for
   a partition it loses), so those it is given again are read back whole from the log
   start, as the new owner left them -- Kafka Streams' way with lost tasks (closed
   dirty, their state wiped and restored from the changelog). Kafka fences the member's
   offset commit itself (``IllegalGenerationError``/``UnknownMemberIdError``), so the
   readings behind the dropped states are read again by whoever owns them. Likewise
   the agents (``streams/app.py``) handle no message or batch, fetched before the
   freeze and still queued, once the group has dropped the worker (waiting out the
   doubt first, ``streams.membership.still_member``): it is released unacked
   (``release``, ``BatchDrain.done``) for its partition's owner, which reads it again.

faust internals relied on (``tests/unit/streams/test_faust_patches.py`` fails loudly if
any of them changes): ``AIOKafkaConsumerThread._create_worker_consumer`` (wrapped; its
0.15.3 source hash is pinned, with its ``fetch_max_wait_ms=1500``) and aiokafka's
``AIOKafkaConsumer._fetch_max_wait_ms`` and ``_isolation_level`` (change 11),
``Consumer._drain_messages``, ``Consumer.ack``, ``Consumer.perform_seek`` and
``Consumer._new_offset`` (replaced; their 0.15.3 source hashes are pinned; ``_new_offset``
is faust's own but for the check and change 12's gaps), ``Consumer._gap``,
``Consumer.seek_to_committed``, ``Consumer._seek``, ``earliest_offsets``,
``app.tables.changelog_topics``, ``Consumer._thread`` (``call_thread``,
``_ensure_consumer``: aiokafka's ``assignment``, ``seek`` and, never ``position()``,
which waits without end for a partition being reset, its subscription state: change 9's
and the rewinds' positions, t99),
``ThreadDelegateConsumer._seek``, ``AIOKafkaConsumerThread.assignment``,
``verify_event_path`` and ``verify_recovery_event_path`` (replaced and wrapped, change
18; their sources and those of the thread's delegations it relies on are pinned in
``THREAD_SOURCES``),
``Consumer._wait_next_records``, ``AIOKafkaConsumerThread._consumer`` and aiokafka's
``AIOKafkaConsumer._coordinator.generation`` (change 10; faust copies it to
``app.consumer_generation_id`` in ``ConsumerRebalanceListener.on_partitions_assigned``),
``_to_message`` (its 0.15.3 source hash is pinned:
``Messages.columns`` reads the same fields of aiokafka's ``ConsumerRecord`` -- ``value``,
``offset``, ``timestamp`` in ms, divided by 1000.0 as it does),
``_read_offset``, ``_committed_offset``, ``_acked``, ``_acked_index``, ``_n_acked``,
``_unacked_messages``, ``_waiting_for_ack``, ``_buffered_partitions``, ``_commit_every``,
``_add_gap``, ``_gap`` (its IntervalTrees), ``perform_seek``, ``flow_active``,
``scheduler``, ``callback``, ``diag``, ``faust.utils.functional.consecutive_numbers``,
``app.consumer_generation_id``, ``app.flow_control``, ``Message.generation_id``,
``Message.acked`` and ``faust.types.tuples.ack_lock``, the memory ``Store``'s
``_key_partition`` (change 14), ``TableManager.on_start`` (replaced, change 15; its
0.15.3 source hash is pinned) with ``_update_channels``, ``recovery`` and
``should_stop``; ``Recovery._seek_offsets`` (replaced, change 17; its 0.15.3 source
hash pinned in ``RECOVERY_SOURCES`` with those of ``Recovery._restart_recovery`` and
``_slurp_changelogs``, whose order of seeks and offset check it relies on, and of
``TableManager.changelog_queue`` and mode 0.7.1's ``FlowControlQueue.clear``, the
queue whose ``clear`` it replaces) with ``active_tps``, ``active_offsets`` and
``standby_offsets``, the queue's ``_queue`` and ``_flow_control`` and an event's
``message.generation_id``; and aiokafka 0.14.0's
``PartitionRecords._unpack_records`` (replaced, change 13; its source hash is pinned in
``AIOKAFKA_SOURCES`` and tested in ``tests/unit/streams/test_unreadable_batches.py``;
with ``Fetcher._proc_fetch_request``, which makes each partition's records by the
fetcher module's ``MemoryRecords``, and ``_DefaultRecordBatchPy``'s ``__init__`` and
``_maybe_uncompress`` with the fields ``_buffer``, ``_pos``, ``_num_records``, pinned in
``RECORD_SOURCES``) with
the ``PartitionRecords`` fields it reads (``_tp``, ``_records``, ``_check_crcs``,
``_isolation_level``, ``next_fetch_offset``, ``_consume_aborted_up_to``,
``_contains_abort_marker``, ``_aborted_producers``, ``_consumer_record``); and, for
change 19, aiokafka's ``GroupCoordinator.generation`` reset to
``OffsetCommitRequest.DEFAULT_GENERATION_ID`` (-1) and its ``_closing`` future (set by
``close`` before the LeaveGroup), ``_on_join_prepare`` calling the revocation listener,
and faust's ``app.tables.recovery`` with ``Recovery.revoke`` and ``Recovery._add``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, cast

import aiokafka
import faust
from aiokafka import errors as aiokafka_errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import READ_COMMITTED, Fetcher, PartitionRecords
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.record.default_records import _DefaultRecordBatchPy, _DefaultRecordPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import decode_varint
from aiokafka.structs import ConsumerRecord
from faust.stores.memory import Store as MemoryStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import (
    CONSUMER_FETCHING,
    Consumer,
    ThreadDelegateConsumer,
    ensure_TP,
    ensure_TPset,
)
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, ensure_aiokafka_TP
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers
from mode import Service, ServiceT
from mode.utils.futures import notify
from mode.utils.queues import FlowControlQueue

from streams.loop_dns import install as install_loop_dns

FAUST_VERSION = "0.15.3"
# aiokafka's generation of a consumer that is no member (OffsetCommitRequest's
# DEFAULT_GENERATION_ID), which ``reset_generation`` sets (change 19).
NO_GENERATION = -1
# sha256 of inspect.getsource() of the replaced methods in faust-streaming 0.15.3.
PATCHED_SOURCES = {
    "_drain_messages": "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    "ack": "5fcf41cf45153475de3790dc56fec1b83335956dc8b3bf7ff6bbb2b57627f03f",
    "perform_seek": "0e8c130ff4b0afd82c0be9c5fd831316e10febc62c94032833911096e156d7c6",
    "_new_offset": "1d2c7ea89a7ad4f1a216c1d51936e569162cd66bd56f889e13fd29c910b58eb0",
}
# The same for the wrapped AIOKafkaConsumerThread method (change 4).
WRAPPED_SOURCES = {
    "_create_worker_consumer": "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
}
# The same for the methods read, not replaced, whose output the batch path must equal:
# ``_to_message`` (``Messages.columns`` reads the same record fields, timestamps / 1000).
READ_SOURCES = {
    "_to_message": "7c24f6511b2fcef7cbfe73526e78de033bfe0df211f1fd30509d699c9deb6ce4",
}
# The same for the table manager's method replaced by change 15.
TABLE_SOURCES = {
    "on_start": "365dd25fbc0e068499c89e526516c638693a2d143b6ac249f84a60f5267fec9d",
}
# The same for change 17: the recovery method replaced, the two it relies on (the order
# of its seeks, its offset check), the table manager's queue property it wraps and
# mode's (0.7.1) queue ``clear`` it replaces on that queue.
RECOVERY_SOURCES = {
    "Recovery._seek_offsets": "19598ca63d94d250e49d2dfe48a3c48ecbdf65ee4f1a2871abda51d28b335e55",
    "Recovery._restart_recovery": (
        "6bd8a8558a2dffe4c60b8150f23d721baa6b3d658367f911a3ad2187e20efc6f"
    ),
    "Recovery._slurp_changelogs": (
        "7825c7e50f766d5ab0fd246b63420ea0dfcd732d005f1057cc9da656ff5d3967"
    ),
    "TableManager.changelog_queue": (
        "9c7f4cac57ef170647f12c135f4419000d27be45c536bf07ec013d8d3d028e2e"
    ),
    "FlowControlQueue.clear": "fa9a86f6b097c90fd4dd86ccb1ce7c57d3c961d8d720d465ba8cb98429b9d578",
}
# The same for aiokafka's method replaced by change 13 (aiokafka 0.14.0).
AIOKAFKA_VERSION = "0.14.0"
AIOKAFKA_SOURCES = {
    "_unpack_records": "b803e6d46480732c7a7faa8e784b338bcdd4e707ea67fba96c013654b04b8a08",
}
# What change 13's re-reading of a batch relies on (aiokafka 0.14.0): the fetcher makes
# each partition's ``MemoryRecords`` from the fetch's bytes by the module's name, and
# the pure-Python batch frames a batch and decompresses its records.
RECORD_SOURCES: dict[str, str] = {
    "Fetcher._proc_fetch_request": (
        "59bf948fff47eed580671971252454daa614df479733f3bedfefe95bc4d8ad30"
    ),
    "_DefaultRecordBatchPy.__init__": (
        "adc08a5cd162e8c2ea748d0312716021c8b29ce8dc6b18b2e6f19c20f2f42d03"
    ),
    "_DefaultRecordBatchPy._maybe_uncompress": (
        "c9d0dc2bed50cc869d2dad835d60674244b4981082a86c1c1c5d82a6bef7c92c"
    ),
}
# The same for aiokafka's group coordinator method replaced by change 16.
COORDINATOR_SOURCES = {
    "_maybe_leave_group": "016cd88a16e6c4b5b08ecab793e0fde0204fe2cfd836af5f682c48630d3fba2e",
}
# What the event loop's thread may touch of the consumer's thread's objects (faust
# 0.15.3, aiokafka 0.14.0; change 18): the seek replaced to run on the thread,
# the reads replaced by ``_end_offset`` and wrapped by ``verify_event_path``, and the
# delegations that already run on the thread (``call_thread``), which must stay so.
THREAD_SOURCES: dict[str, str] = {
    "ThreadDelegateConsumer._seek": (
        "4f95c631420410a5fe6ecb1eff2f9010d7cfff6861fe00d41889bb31bd7df8b1"
    ),
    "AIOKafkaConsumerThread.seek": (
        "1498560d05f025820be906f3695710b6ac45258ea1c96ab5a403fcb38520c234"
    ),
    "AIOKafkaConsumerThread.highwater": (
        "6f7dbe109ae6807f500a1343eefb23f39e856ee62eaad5d09f145f49f838c4ab"
    ),
    "AIOKafkaConsumer.highwater": (
        "044275efc968e2862912a86f805e5b8f79e52cd589fbc40f59562741d1205a45"
    ),
    "AIOKafkaConsumer.last_stable_offset": (
        "ed875fe136b96e881c487c89152f4189060e79f199d36b78f27419f6f1dee7a0"
    ),
    "AIOKafkaConsumerThread.seek_to_committed": (
        "775ab0adc4b052abee204d5347a556412b1f77ed4de971adde69a55a1cb6f908"
    ),
    "AIOKafkaConsumerThread.earliest_offsets": (
        "5d697cd768735af7b5aa13f130070e2e1a4db1f78ec5c04c2cf995c6c8c15b05"
    ),
    "AIOKafkaConsumerThread.seek_wait": (
        "12e8d34e554e90240c73ce9912f6533c7a6a3337abc5a31de5c83bc6ac973f25"
    ),
    "AIOKafkaConsumerThread.position": (
        "20a2c434bb8ed1807ccd306bc851661c48bc245710ddb4a47aa1c10d6b9b48dc"
    ),
    "AIOKafkaConsumerThread.commit": (
        "d31c8558ba25310c0b7acbf128a244131f6e51d1b555bcb137188f08857d6558"
    ),
    "AIOKafkaConsumerThread.getmany": (
        "26fc5fc9f3b667e104f9657dbc49da3b3b6620d40cc9856761cbaf4da2172557"
    ),
    "AIOKafkaConsumerThread.assignment": (
        "61f105132ae619f69f4a09c3eff4bbd4e2b4f467e3a3e49d458d9558987e952d"
    ),
    "AIOKafkaConsumerThread.verify_event_path": (
        "b983e7735f647cb34650530fb0f1bc709e8cb67d54c483b939b14b49b8d931e0"
    ),
    "AIOKafkaConsumerThread.verify_recovery_event_path": (
        "8c26b3ec3856396a72b0a7cbe9ed4250f8f4626ac19e1b48af53bc6432a2c836"
    ),
    "AIOKafkaConsumerThread._verify_aiokafka_event_path": (
        "c7c75a7c73289962f1202a881173a904461ef1b90561a7e8c1052ea9aa582aea"
    ),
}
_ORIGINAL: dict[str, Callable[..., Any]] = {}
log = logging.getLogger(__name__)
# A batch's own last offset (``last_offset_delta``, inside the corrupted bytes) is trusted
# for at most this many offsets; past it the range is one offset (change 13).
MAX_UNREADABLE_SPAN = 100_000
UNREADABLE_REASON = "unreadable_batch"
# The offset after a one-offset range whose batch could not be framed, by partition: the
# broker skips that batch by its own length, so the next fetch begins past the batch's
# other offsets, which are unreadable too (change 13). Read once per fetch, not per record.
_FRAMING_BROKE: dict[Any, int] = {}
DRAIN_ATTRIBUTE = "citybrain_batch_drain"
FETCH_WAIT_ATTRIBUTE = "citybrain_fetch_max_wait_ms"
ISOLATION_ATTRIBUTE = "citybrain_isolation_level"
SEEKS_ATTRIBUTE = "citybrain_seeks"
NEXT_ATTRIBUTE = "citybrain_next_offsets"
FLOOR_ATTRIBUTE = "citybrain_log_starts"
REREAD_ATTRIBUTE = "citybrain_reread_from"
HOLES_ATTRIBUTE = "citybrain_holes"


def source_hash(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def _pinned_faust() -> None:
    """``RuntimeError`` unless faust is the version every change here was written for."""
    if faust.__version__ != FAUST_VERSION:
        raise RuntimeError(
            f"streams/faust_patches.py was written for faust-streaming {FAUST_VERSION}, "
            f"found {faust.__version__}: re-read the patched internals before upgrading"
        )


def install() -> None:
    """Replace ``Consumer._drain_messages``, ``ack``, ``perform_seek`` and ``_new_offset``,
    and aiokafka's ``PartitionRecords._unpack_records`` (change 13) (idempotent). Raises
    ``RuntimeError`` if faust is not the version these replacements were written for."""
    # Its own entry, not any: the other changes (4, 11, 15) keep their originals here
    # too, and an app built first with the stock drain installs those alone.
    if "_drain_messages" in _ORIGINAL:
        return
    _pinned_faust()
    _ORIGINAL["_drain_messages"] = Consumer._drain_messages
    _ORIGINAL["ack"] = Consumer.ack
    _ORIGINAL["perform_seek"] = Consumer.perform_seek
    _ORIGINAL["_new_offset"] = Consumer._new_offset
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    Consumer.ack = _ack  # type: ignore[method-assign]
    Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _ORIGINAL["_unpack_records"] = PartitionRecords._unpack_records
    PartitionRecords._unpack_records = _unpack_records
    aiokafka_fetcher.MemoryRecords = KeptMemoryRecords


def keep_to_the_consumer_thread() -> None:
    """Make faust's seek run on the consumer's thread, its assignment read once, and its
    partition checks skip a partition a rebalance has moved (change 18; idempotent).
    Call before the worker starts. Raises ``RuntimeError`` if faust is not the pinned
    version."""
    _pinned_faust()
    if "ThreadDelegateConsumer._seek" in _ORIGINAL:
        return
    _ORIGINAL["ThreadDelegateConsumer._seek"] = ThreadDelegateConsumer._seek
    ThreadDelegateConsumer._seek = _seek_on_thread  # type: ignore[method-assign]
    for name in ("verify_event_path", "verify_recovery_event_path"):
        _ORIGINAL[f"AIOKafkaConsumerThread.{name}"] = getattr(AIOKafkaConsumerThread, name)
        setattr(AIOKafkaConsumerThread, name, _verifier(name))
    _ORIGINAL["AIOKafkaConsumerThread.assignment"] = AIOKafkaConsumerThread.assignment
    AIOKafkaConsumerThread.assignment = _assignment  # type: ignore[method-assign]


def original(name: str) -> Callable[..., Any]:
    """faust's own method as it was before ``install()`` or ``set_fetch_max_wait`` (for
    the pinning test)."""
    if name in READ_SOURCES:
        from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

        return cast(Callable[..., Any], getattr(AIOKafkaConsumer, name))
    if name in COORDINATOR_SOURCES:
        return _ORIGINAL.get(name) or cast(Callable[..., Any], GroupCoordinator._maybe_leave_group)
    if name in THREAD_SOURCES:
        owner_name, method = name.split(".")
        owners = {
            "ThreadDelegateConsumer": ThreadDelegateConsumer,
            "AIOKafkaConsumerThread": AIOKafkaConsumerThread,
            "AIOKafkaConsumer": aiokafka.AIOKafkaConsumer,
        }
        return _ORIGINAL.get(name) or cast(Callable[..., Any], getattr(owners[owner_name], method))
    if name in AIOKAFKA_SOURCES:
        return _ORIGINAL.get(name) or cast(Callable[..., Any], PartitionRecords._unpack_records)
    if name in RECORD_SOURCES:
        owner_name, method = name.split(".")
        owner_of = {"Fetcher": Fetcher, "_DefaultRecordBatchPy": _DefaultRecordBatchPy}
        return cast(Callable[..., Any], getattr(owner_of[owner_name], method))
    if name in RECOVERY_SOURCES:
        return _recovery_original(name)
    if name in TABLE_SOURCES:
        return _ORIGINAL.get(f"TableManager.{name}") or cast(
            Callable[..., Any], getattr(TableManager, name)
        )
    owner = AIOKafkaConsumerThread if name in WRAPPED_SOURCES else Consumer
    return _ORIGINAL.get(name) or cast(Callable[..., Any], getattr(owner, name))


def forget_recovered_key(store: Any, key: Any) -> None:
    """Change 14: drop faust's memory store's note of the changelog partition ``key`` was
    recovered from, as recovery does for a tombstone it reads; other stores keep none."""
    if isinstance(store, MemoryStore):
        store._key_partition.pop(key, None)


def set_fetch_max_wait(app: faust.App, seconds: float) -> None:
    """Make ``app``'s consumer ask the broker to hold a fetch with no new data at most
    ``seconds`` (change 4; faust's own is 1.5 s). Call before the worker starts.
    Raises ``RuntimeError`` if faust is not the pinned version."""
    _wrap_create_worker_consumer()
    setattr(app, FETCH_WAIT_ATTRIBUTE, max(1, round(seconds * 1000)))


def start_tables_at_once() -> None:
    """Replace ``TableManager.on_start`` by faust's own without its first second's sleep
    (change 15; idempotent). Call before the worker starts. Raises ``RuntimeError`` if
    faust is not the pinned version."""
    _pinned_faust()
    if "TableManager.on_start" not in _ORIGINAL:
        _ORIGINAL["TableManager.on_start"] = TableManager.on_start
        TableManager.on_start = _tables_on_start  # type: ignore[method-assign]


async def _tables_on_start(self: TableManager) -> None:
    """faust 0.15.3's ``TableManager.on_start`` without ``await self.sleep(1.0)``."""
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()


def leave_group_on_stop() -> None:
    """Replace aiokafka's ``GroupCoordinator._maybe_leave_group`` by one that leaves the
    group as a static member too (change 16; idempotent). Call before the worker starts.
    Raises ``RuntimeError`` if aiokafka is not the pinned version."""
    if aiokafka.__version__ != AIOKAFKA_VERSION:
        raise RuntimeError(
            f"streams/faust_patches.py was written for aiokafka {AIOKAFKA_VERSION}, found "
            f"{aiokafka.__version__}: re-read GroupCoordinator._maybe_leave_group"
        )
    if "_maybe_leave_group" not in _ORIGINAL:
        _ORIGINAL["_maybe_leave_group"] = GroupCoordinator._maybe_leave_group
        GroupCoordinator._maybe_leave_group = _maybe_leave_group


async def _maybe_leave_group(self: GroupCoordinator) -> None:
    """aiokafka 0.14.0's ``_maybe_leave_group`` without its ``_group_instance_id is None``
    condition: a static member stopping on purpose leaves too, so the group moves its
    partitions at once, not after the session timeout (change 16)."""
    if self.generation > 0:
        # A minimal effort, as aiokafka's: no resend if it fails or times out.
        request = LeaveGroupRequest(self.group_id, self.member_id)
        try:
            await self._send_req(request)
        except aiokafka_errors.KafkaError as err:
            log.error("LeaveGroup request failed: %s", err)
        else:
            log.info("LeaveGroup request succeeded")
    self.reset_generation()


def read_changelogs_once() -> None:
    """Change 17 (idempotent; call before the worker starts): a changelog partition both
    active and standby (a global table's) is read on from where table recovery's active
    read ended, not again from its start; and the changelog queue keeps this consumer
    generation's records when the flow resumes. Raises ``RuntimeError`` if faust is not
    the pinned version."""
    _pinned_faust()
    if "Recovery._seek_offsets" not in _ORIGINAL:
        _ORIGINAL["Recovery._seek_offsets"] = Recovery._seek_offsets
        _ORIGINAL["TableManager.changelog_queue"] = _queue_property_getter()
        Recovery._seek_offsets = _seek_offsets  # type: ignore[method-assign]
        TableManager.changelog_queue = property(_changelog_queue)  # type: ignore[assignment,method-assign]


def _queue_property_getter() -> Callable[..., Any]:
    """The getter of faust's ``TableManager.changelog_queue`` property as it is now."""
    return cast(Callable[..., Any], cast(property, vars(TableManager)["changelog_queue"]).fget)


def _recovery_original(name: str) -> Callable[..., Any]:
    """faust's (or mode's) own of a ``RECOVERY_SOURCES`` name, for the pinning test."""
    if name in _ORIGINAL:
        return _ORIGINAL[name]
    owner_name, attribute = name.split(".")
    if owner_name == "TableManager":
        return _queue_property_getter()
    if owner_name == "FlowControlQueue":
        return cast(Callable[..., Any], FlowControlQueue.clear)
    found = getattr(Recovery, attribute)
    return cast(Callable[..., Any], getattr(found, "fun", found))  # a ServiceTask's own


def standby_seek_offsets(
    tps: set[TP], standby: Mapping[TP, int | None], active_tps: set[TP], active: Mapping[TP, int]
) -> dict[TP, int | None]:
    """Change 17: where each standby partition of ``tps`` is read from, in faust's terms
    (the last offset read; -1 or None: from the log start): a partition that is also
    active from its active offset when that is further, since recovery dropped every
    record up to it as already applied (``_slurp_changelogs``); others as faust had
    them (``standby``)."""
    starts: dict[TP, int | None] = {}
    for tp in tps:
        start = standby.get(tp)
        read = active.get(tp) if tp in active_tps else None
        starts[tp] = read if read is not None and (start is None or read > start) else start
    return starts


async def _seek_offsets(
    self: Recovery, consumer: Any, tps: set[TP], offsets: Any, title: str
) -> None:
    """faust's ``Recovery._seek_offsets``, except that the standby seek (the one given
    ``standby_offsets``) starts a partition also active where its active read ended
    (``standby_seek_offsets``). ``standby_offsets`` itself is left as faust keeps it."""
    if offsets is self.standby_offsets:
        starts = standby_seek_offsets(tps, offsets, self.active_tps, self.active_offsets)
        moved = {tp: start for tp, start in starts.items() if start != offsets.get(tp)}
        if moved:
            self.log.info(
                "citybrain: standby reading of %d changelog partitions goes on from their "
                "active recovery: %s",
                len(moved),
                ", ".join(f"{tp.topic}[{tp.partition}]@{moved[tp]}" for tp in sorted(moved)),
            )
        offsets = starts
    await _ORIGINAL["Recovery._seek_offsets"](self, consumer, tps, offsets, title)


def _changelog_queue(self: TableManager) -> Any:
    """faust's ``TableManager.changelog_queue``, its queue's ``clear`` replaced once, on
    the instance, by ``keep_this_generation`` (change 17)."""
    made = self._changelog_queue is None
    queue = _ORIGINAL["TableManager.changelog_queue"](self)
    if made:
        app = self.app
        queue.clear = lambda: keep_this_generation(queue, app.consumer_generation_id)
    return queue


def keep_this_generation(queue: FlowControlQueue[Any], generation: int) -> None:
    """The changelog queue's ``clear`` (change 17): while the flow is suspended (a
    revoke) every event goes, as mode's ``clear`` does; while it runs (a resume, after
    recovery's seeks of this generation) only events fetched in an older consumer
    generation go: the rest are this generation's reading, in offset order, which the
    consumer will not hand on again."""
    events = queue._queue  # type: ignore[attr-defined]
    if not queue._flow_control.is_active():
        events.clear()
        return
    kept = [event for event in events if event.message.generation_id == generation]
    if len(kept) != len(events):
        events.clear()
        events.extend(kept)


def read_committed(app: faust.App) -> None:
    """Make ``app``'s consumer read only committed records (change 11): faust's worker
    reads uncommitted unless the app itself is exactly-once. Call before the worker
    starts. Raises ``RuntimeError`` if faust is not the pinned version."""
    _wrap_create_worker_consumer()
    setattr(app, ISOLATION_ATTRIBUTE, "read_committed")


def _wrap_create_worker_consumer() -> None:
    _pinned_faust()
    if "_create_worker_consumer" not in _ORIGINAL:
        _ORIGINAL["_create_worker_consumer"] = AIOKafkaConsumerThread._create_worker_consumer
        AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]


def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    """faust's consumer, its thread's loop resolving names through ``streams.loop_dns``
    (helper t92), with the app's fetch wait (if set) instead of faust's 1,500 ms and the
    app's isolation level (if set): aiokafka reads ``_fetch_max_wait_ms`` and
    ``_isolation_level`` when ``start`` builds its fetcher."""
    consumer = _ORIGINAL["_create_worker_consumer"](self, transport)
    # The consumer's thread has a loop of its own: its name lookups bounded, one per
    # name at a time, off that loop's default executor (streams/loop_dns.py).
    install_loop_dns(self.thread_loop)
    wait_ms = getattr(self.app, FETCH_WAIT_ATTRIBUTE, None)
    if wait_ms is not None:
        consumer._fetch_max_wait_ms = wait_ms
    isolation = getattr(self.app, ISOLATION_ATTRIBUTE, None)
    if isolation is not None:
        consumer._isolation_level = isolation
    return consumer


def _seeks(consumer: Consumer) -> int:
    """How many seeks to the committed offsets have begun or ended on ``consumer``."""
    return cast(int, getattr(consumer, SEEKS_ATTRIBUTE, 0))


def _count_seek(consumer: Consumer) -> None:
    setattr(consumer, SEEKS_ATTRIBUTE, _seeks(consumer) + 1)


def next_offsets(consumer: Consumer) -> dict[TP, int]:
    """Each stream partition's next offset to deliver (change 7): set by a seek to the
    committed offsets and by every delivery, so a record past it is seen as one."""
    found: dict[TP, int] | None = getattr(consumer, NEXT_ATTRIBUTE, None)
    if found is None:
        found = {}
        setattr(consumer, NEXT_ATTRIBUTE, found)
    return found


def order_verdict(offset: int, expected: int | None, reread_from: int | None) -> str:
    """What to do with a record at ``offset`` of a stream partition whose next offset is
    ``expected`` (None: not known yet), when records from ``reread_from`` were last read
    again (change 7): ``"in order"`` (deliver it), ``"read again"`` (records
    ``expected``..``offset - 1`` were passed over: seek back to ``expected``, deliver
    nothing more of this fetch) or ``"gap"`` (the same hole came back after reading it
    again: those offsets are not in the log -- retention, transaction markers -- so
    pass them as faust does)."""
    if expected is None or offset <= expected:
        return "in order"
    return "gap" if reread_from == expected else "read again"


def _holes(consumer: Consumer) -> dict[TP, tuple[int, int]]:
    """Each stream partition's hole being read again (changes 7 and 9): first and last
    offset, until the re-read shows whether records were in it (``settle_hole``)."""
    found: dict[TP, tuple[int, int]] | None = getattr(consumer, HOLES_ATTRIBUTE, None)
    if found is None:
        found = {}
        setattr(consumer, HOLES_ATTRIBUTE, found)
    return found


def note_hole(consumer: Consumer, tp: TP, first: int, last: int, quiet: bool = False) -> None:
    """Offsets ``first``..``last`` of ``tp`` are being read again (changes 7 and 9): said
    at debug level only, since most such holes hold no record -- a transaction's marker,
    an aborted transaction's records (read committed, change 11) -- and a transactional
    feed has one per transaction (helper t77: a warning at each boundary). Whether the
    re-read found records is told by ``settle_hole``."""
    _holes(consumer)[tp] = (first, last)
    consumer.log.debug(
        "citybrain: %s[%s]: offsets %s..%s not handed on%s; reading them again",
        tp.topic,
        tp.partition,
        first,
        last,
        " (the partition then went quiet)" if quiet else "",
    )


def settle_hole(consumer: Consumer, tp: TP, offset: int | None) -> None:
    """The re-read of ``tp``'s hole (``note_hole``) reached ``offset`` (the first record
    handed on since, or ``None``: the hole came back empty and passes as a gap): records
    in the hole had been passed over unprocessed -- a warning, for a rebalance or a
    seek that skipped them -- or none was there, said at debug level only."""
    hole = _holes(consumer).pop(tp, None)
    if hole is None:
        return
    first, last = hole
    if offset is not None and offset <= last:
        consumer.log.warning(
            "citybrain: %s[%s]: offsets %s..%s had been passed over unprocessed; read again",
            tp.topic,
            tp.partition,
            first,
            last,
        )
    else:
        consumer.log.debug(
            "citybrain: %s[%s]: offsets %s..%s hold no record to hand on (transaction "
            "markers, an aborted transaction, retention): passed",
            tp.topic,
            tp.partition,
            first,
            last,
        )


def _reread_from(consumer: Consumer) -> dict[TP, int]:
    found: dict[TP, int] | None = getattr(consumer, REREAD_ATTRIBUTE, None)
    if found is None:
        found = {}
        setattr(consumer, REREAD_ATTRIBUTE, found)
    return found


def _stale(consumer: Consumer, generation: int | None, seeks: int | None = None) -> bool:
    """May records fetched in ``generation``, when ``seeks`` seeks had begun or ended, no
    longer be delivered? (A rebalance, a stopped flow, or a seek back to the committed
    offsets since: the partition's position was moved back under them, change 6; or one
    under way when the fetch began -- ``seeks`` odd -- so its records may come from
    either side of the seek, and the next offsets it sets are not yet set.)"""
    return (
        generation != consumer.app.consumer_generation_id
        or not consumer.flow_active
        or (seeks is not None and (seeks % 2 == 1 or _seeks(consumer) != seeks))
        or _membership_lost(consumer)
    )


def _membership_lost(consumer: Consumer) -> bool:
    """Has the group told this consumer it is no longer the member of the generation its
    app is in (change 10)? aiokafka resets its coordinator's generation to -1 when a
    heartbeat or commit says so (``UnknownMemberIdError``, ``IllegalGenerationError``),
    and sets it to the new one at a join, before faust's next rebalance callbacks. A
    worker frozen past its session wakes in that state: its partitions are another's
    until it rejoins, so nothing it fetches may be handed on meanwhile."""
    thread = getattr(consumer, "_thread", None)
    aiokafka_consumer = getattr(thread, "_consumer", None)
    coordinator = getattr(aiokafka_consumer, "_coordinator", None)
    if coordinator is None:  # not started, or not the aiokafka driver
        return False
    return cast(bool, coordinator.generation != consumer.app.consumer_generation_id)


def group_dropped(consumer: Any) -> bool:
    """Has the group dropped this member (change 19)? aiokafka resets its coordinator's
    generation to -1 when a heartbeat, a join, a sync or a commit is told the member is
    unknown or of an old generation (``reset_generation``), as Kafka's Java client marks
    its partitions lost; a LeaveGroup at a stop does too, which is no loss (the
    coordinator is closing then). False before the consumer starts."""
    thread = getattr(consumer, "_thread", None)
    aiokafka_consumer = getattr(thread, "_consumer", None)
    coordinator = getattr(aiokafka_consumer, "_coordinator", None)
    if coordinator is None:
        return False
    closing = coordinator._closing
    return cast(bool, coordinator.generation == NO_GENERATION and not closing.done())


def read_whole_again(app: faust.App, changelogs: Sequence[str], partitions: int) -> None:
    """Make faust's recovery read each of ``changelogs``' ``partitions`` from its log start
    when this worker is given it again (change 19): ``Recovery.revoke`` forgets the offset
    it had read to, as faust does for a partition it loses; a partition kept through a
    rebalance would otherwise be read on only from there."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    for topic in changelogs:
        for partition in range(partitions):
            recovery.revoke(TP(topic, partition))


def _ack(self: Consumer, message: Message) -> bool:
    """``Consumer.ack``, except that a message of an older consumer generation is only
    marked done: its partition was seeked back to the committed offset since it was
    fetched, so it will be read again, and its offset must not enter ``_acked``."""
    if message.generation_id != self.app.consumer_generation_id:
        release(self, message)
        return False
    return cast(bool, _ORIGINAL["ack"](self, message))


def release(consumer: Any, message: Message) -> None:
    """Mark ``message`` done without acking it: no commit passes it, and a revocation's
    ``wait_empty`` no longer waits for it. For a message of an older generation, and
    one left unhandled because the group has dropped this worker (change 19)."""
    with ack_lock:
        message.acked = True
        consumer._unacked_messages.discard(message)
        notify(consumer._waiting_for_ack)


def _new_offset(self: Consumer, tp: TP) -> int | None:
    """``Consumer._new_offset`` (the offset to commit: one past the first run of acked
    offsets, gaps merged in), except that the run must start at the committed offset
    (change 8). faust's check lets it start one later (``min(acked) - committed > 1``,
    read as if the committed offset were the last processed one; Kafka's is the next to
    read), so an unacked message right at the committed offset was committed over; and
    a partition never committed had no check at all (its log start is used). A gap right
    after the acked offsets, or at the committed offset, is merged in too (change 12)."""
    acked = self._acked[tp]
    gap_for_tp = self._gap[tp]
    committed = self._committed_offset[tp]
    floor = committed if committed is not None else getattr(self, FLOOR_ATTRIBUTE, {}).get(tp)
    if gap_for_tp:
        # Every gap that begins at or below the end of the acked offsets (or, none acked,
        # at the committed offset) is merged in, a gap right after them too (change 12):
        # faust merged only gaps below the last acked offset, so a transaction's commit
        # marker ending a partition that then went quiet was never committed over.
        index = self._acked_index[tp]
        reach = max(acked) + 1 if acked else floor
        while reach is not None:
            found = gap_for_tp.overlap(0, reach + 1)
            if not found:
                break
            for entry in found:
                acked.extend(o for o in range(entry.begin, entry.end) if o not in index)
                reach = max(reach, entry.end)
            gap_for_tp.chop(0, reach)
    if not acked:
        return None
    acked.sort()
    if floor is not None and acked[0] > floor:
        return None  # the message at the committed offset is not done yet
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return batch[-1] + 1


async def _perform_seek(self: Consumer) -> None:
    """``Consumer.perform_seek`` (seek every assigned partition to its committed offset
    and read from there), except that a stream partition with no committed offset above
    0 is seeked to its log start (change 3 above) instead of keeping its position."""
    # Counted before and after (change 6): records the drain holds from before this
    # seek, or fetched while it ran, are not delivered over the moved position.
    _count_seek(self)
    try:
        await _seek_to_committed(self)
    finally:
        _count_seek(self)


async def _seek_to_committed(self: Consumer) -> None:
    read_offset = self._read_offset
    committed_offsets = await self.seek_to_committed()
    changelogs = self.app.tables.changelog_topics
    never_committed = [
        tp for tp, offset in committed_offsets.items() if not offset and tp.topic not in changelogs
    ]
    log_starts: dict[TP, int] = {}
    if never_committed:
        # aiokafka seeks only offsets above 0 (a committed 0 is the log start too).
        # ``earliest_offsets`` lives on the thread-delegating consumer every worker runs.
        log_starts = await cast(Any, self).earliest_offsets(*never_committed)
        # On the consumer's own thread, where aiokafka's fetcher runs: faust's ``_seek``
        # seeks from this one, and aiokafka's ``seek_to`` then deleted a partition's
        # buffered records while the thread's ``fetched_records`` walked them (KeyError,
        # the fetcher and the worker crashed at a SIGKILL takeover under load).
        thread = cast(Any, self)._thread
        await thread.call_thread(
            _seek_all_in_thread,
            thread._ensure_consumer(),
            {tp: log_starts[tp] for tp in never_committed},
        )
    read_offset.update(
        {
            tp: offset if offset is not None and offset >= 0 else None
            for tp, offset in committed_offsets.items()
        }
    )
    self._committed_offset.update(
        {
            ensure_TP(tp): offset if offset else None
            for tp, offset in committed_offsets.items()
            if offset is not None
        }
    )
    # Where a never-committed partition's commits must start (change 8).
    setattr(self, FLOOR_ATTRIBUTE, {ensure_TP(tp): offset for tp, offset in log_starts.items()})
    nexts = next_offsets(self)
    nexts.clear()  # every assigned partition is here; a revoked one is forgotten
    # A hole found after this seek is read again once before it may pass as a gap: a
    # mark left from before it (an earlier generation's hole that began at the same
    # committed offset) passed such a hole unread, and a commit then went over it.
    _reread_from(self).clear()
    _holes(self).clear()
    for tp, offset in committed_offsets.items():
        if tp.topic not in changelogs:
            nexts[ensure_TP(tp)] = log_starts[tp] if tp in never_committed else offset


async def _rewind(self: Consumer, records: Mapping[TP, Sequence[Any]]) -> None:
    """Seek each partition in ``records`` (fetched, then not delivered) back to its first
    record's offset, if nothing has moved it since (its position is still just past the
    last): those records are read again instead of lost. Runs on the consumer's own
    thread with no await between the check and the seek, where faust's and recovery's
    seeks run too, so a partition seeked since the fetch is left where it was put."""
    spans = {tp: (batch[0].offset, batch[-1].offset) for tp, batch in records.items() if batch}
    if spans:
        thread = cast(Any, self)._thread
        await thread.call_thread(_rewind_in_thread, thread._ensure_consumer(), spans)


async def _rewind_changelogs(self: Consumer, records: Mapping[TP, Sequence[Any]]) -> None:
    """Seek each changelog partition in ``records`` (fetched, then dropped because the
    flow had stopped) back to its first dropped offset, if nothing has moved it since.

    Table recovery seeks a changelog to where it must read, then resumes the flow;
    records fetched from there just before the resume were dropped, nothing seeked the
    partition back (it has no committed offset), and recovery waited for them forever
    ("No event received for active tp ... since recovery start"). The check and the seek
    run on the consumer's own thread with no await between, where recovery's seeks run
    too: a partition recovery has seeked since the fetch is left where recovery put it.
    """
    changelogs = self.app.tables.changelog_topics
    await _rewind(self, {tp: batch for tp, batch in records.items() if tp.topic in changelogs})


async def _seek_back(self: Consumer, tp: TP, offset: int) -> None:
    """Seek ``tp`` to ``offset`` on the consumer's own thread (change 7)."""
    thread = cast(Any, self)._thread
    await thread.call_thread(_seek_in_thread, thread._ensure_consumer(), tp, offset)


async def _seek_in_thread(consumer: Any, tp: TP, offset: int) -> None:
    await _seek_all_in_thread(consumer, {tp: offset})


async def _seek_all_in_thread(consumer: Any, offsets: Mapping[TP, int]) -> None:
    """Seek each assigned partition of ``offsets`` to its offset; runs on the consumer's
    thread (aiokafka's consumer is not thread-safe), a partition no longer assigned is
    left alone."""
    assigned = consumer.assignment()
    for tp, offset in offsets.items():
        atp = ensure_aiokafka_TP(tp)
        if atp in assigned:
            consumer.seek(atp, offset)


async def _seek_on_thread(self: ThreadDelegateConsumer, partition: TP, offset: int) -> None:
    """faust's ``ThreadDelegateConsumer._seek`` (what ``Consumer.seek`` calls), run on
    the consumer's thread: faust's called aiokafka's ``seek`` from the caller's (the
    event loop's), and aiokafka's seek deletes the partition's buffered records while
    the thread's ``fetched_records`` may be walking them (the ``KeyError`` of change 3).
    Raises as aiokafka's ``seek`` does (``IllegalStateError``: not assigned)."""
    await self._thread.call_thread(_thread_seek, self._thread, partition, offset)


async def _thread_seek(thread: Any, partition: TP, offset: int) -> None:
    thread.seek(partition, offset)  # faust's AIOKafkaConsumerThread.seek, on its thread


def _assignment(self: AIOKafkaConsumerThread) -> set[TP]:
    """faust's ``AIOKafkaConsumerThread.assignment`` (what ``Consumer.assignment``
    returns: the partitions assigned now), each of aiokafka's objects read once.

    aiokafka's ``assigned_partitions`` reads its current subscription three times (is
    there one, has it an assignment, its partitions), on the caller's thread: faust
    subscribing anew (its conductor does when the topics an app reads change) between
    those reads gave ``None.tps``, an ``AttributeError`` out of a commit, a rebalance
    callback or a metric. An ``Assignment``'s partitions are a frozenset that never
    changes. Raises ``ConsumerNotStarted`` as faust's does."""
    subscription = self._ensure_consumer()._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return set()
    return ensure_TPset(assignment.tps)


def _assigned_state(thread: Any, tp: TP) -> Any:
    """aiokafka's state of ``tp`` in the consumer thread's assignment as it is now, or
    None (not assigned, no assignment, not started); each object read once."""
    aiokafka_consumer = getattr(thread, "_consumer", None)
    if aiokafka_consumer is None:
        return None
    subscription = aiokafka_consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    return None if assignment is None else assignment.state_value(ensure_aiokafka_TP(tp))


def _verifier(name: str) -> Callable[..., None]:
    """faust's ``AIOKafkaConsumerThread.<name>`` (``verify_event_path``,
    ``verify_recovery_event_path``), for a partition still assigned only, and with a
    valid position for the stream check.

    faust's consumer checks each partition of an assignment it read before awaiting
    (``verify_all_partitions_active``, recovery's check), on the event loop's thread:
    a partition a rebalance has moved since was told "no fetch request sent at all
    since worker start" at error level; faust's reads of aiokafka's subscription state
    (the assignment read again, then ``state_value(tp).highwater``) raised
    ``AttributeError`` when the consumer's thread replaced the assignment between
    them; and ``verify_event_path`` reads ``state.position``, which asserts a valid
    position, so a partition whose position the thread was resetting (assigned with no
    committed offset yet, or seeked to its log start) raised ``AssertionError``. Both
    came out of faust's timer, and the consumer crashed with them. A partition no
    longer assigned has nothing to verify; one being reset gets the fetch check only
    (it needs no position); one that went, or began a reset, between faust's reads is
    let go too."""
    verify = _ORIGINAL[f"AIOKafkaConsumerThread.{name}"]
    needs_position = name == "verify_event_path"

    def verified(self: AIOKafkaConsumerThread, now: float, tp: TP) -> None:
        state = _assigned_state(self, tp)
        if state is None:
            return
        if needs_position and not state.has_valid_position:
            self._verify_aiokafka_event_path(now, tp)
            return
        try:
            verify(self, now, tp)
        except (AttributeError, AssertionError):
            state = _assigned_state(self, tp)
            if state is not None and (state.has_valid_position or not needs_position):
                raise  # still assigned with a position: not the race, a fault of its own
            # Moved, or its position reset, while faust read it: nothing to verify.

    verified.__name__ = verified.__qualname__ = name
    return verified


def _end_offset(self: Consumer, tp: TP) -> int | None:
    """``tp``'s high watermark (the last stable offset in a transaction), read on the
    event loop's thread off aiokafka's subscription state, or None when it is not known
    (not fetched yet, the partition not in the assignment, the consumer not started).

    faust's ``highwater`` calls aiokafka's, which asserts ``is_assigned(tp)`` and then
    reads ``subscription.assignment.state_value(tp).highwater`` anew: five reads of
    state the consumer's thread replaces at a rebalance or a new subscription, so an
    assignment replaced between them raised ``AssertionError`` or ``AttributeError``
    (``None.highwater``) out of the drain, and the worker stopped. Here each object is
    read once and kept: an ``Assignment`` never changes which partitions it holds (a
    rebalance makes a new one), and a partition state's ``highwater`` and ``lso`` are
    single attributes the fetcher sets. No ``call_thread`` per fetch: reading one
    attribute is atomic, so the copy is as good as the thread's."""
    state = _assigned_state(getattr(self, "_thread", None), tp)
    if state is None:
        return None
    end = state.lso if self.in_transaction else state.highwater
    return cast(int | None, end)


SWEEP_INTERVAL = 1.0  # seconds between position sweeps (change 9): a hole waits at most this


async def _sweep(self: Consumer, generation: int, seeks: int) -> None:
    """Change 9: read again the passed-over records of stream partitions whose position
    is past their next offset (a quiet partition; change 7 sees a hole only when a later
    record arrives). Call between fetches only: every record returned by then has been
    delivered or rewound, so a position past the next offset is a hole."""
    nexts = next_offsets(self)
    if not nexts or _stale(self, generation, seeks):
        return  # nothing known yet, a seek to the committed offsets under way, a rebalance
    reread = _reread_from(self)
    thread = cast(Any, self)._thread
    past: dict[TP, int] = await thread.call_thread(
        _positions_past_in_thread, thread._ensure_consumer(), self, dict(nexts), dict(reread), seeks
    )
    if _stale(self, generation, seeks):
        return  # a seek since moved the positions and set the next offsets anew
    for tp, position in past.items():
        expected = nexts.get(tp)
        if expected is None:
            continue
        verdict = order_verdict(position, expected, reread.get(tp))
        if verdict == "read again":  # the thread has seeked it back to ``expected``
            reread[tp] = expected
            note_hole(self, tp, expected, position - 1, quiet=True)
        elif verdict == "gap":
            settle_hole(self, tp, None)
            if self.app.topics.acks_enabled_for(tp.topic):
                self._gap[tp].addi(expected, position)
                self._gap[tp].merge_overlaps()
            nexts[tp] = position


async def _positions_past_in_thread(
    consumer: Any, owner: Consumer, expected: dict[TP, int], reread: dict[TP, int], seeks: int
) -> dict[TP, int]:
    """On the consumer's thread: each assigned stream partition whose position is past
    ``expected`` (its next offset), with that position; a first such hole is seeked back
    to ``expected`` here, with no await between the check and the seek. Nothing if a seek
    to the committed offsets began since ``seeks`` was read (it sets both anew)."""
    if _seeks(owner) != seeks:
        return {}
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return {}
    assigned = consumer.assignment()
    past: dict[TP, int] = {}
    for tp, offset in expected.items():
        atp = ensure_aiokafka_TP(tp)
        if atp not in assigned:
            continue
        state = assignment.state_value(atp)
        if state is None or not state.has_valid_position or state.position <= offset:
            continue
        past[tp] = state.position
        if order_verdict(state.position, offset, reread.get(tp)) == "read again":
            consumer.seek(atp, offset)
    return past


async def _rewind_in_thread(consumer: Any, spans: dict[TP, tuple[int, int]]) -> None:
    """On the consumer's thread: seek each assigned partition of ``spans`` back to its
    first offset if its position is still just past its last. The position is read off
    aiokafka's subscription state, as ``_positions_past_in_thread`` does, never through
    ``position()``: that waits, one request timeout after another and without end, for
    a partition whose position is being reset (re-assigned by a rebalance during the
    fetch, its committed offset not yet known; a broker away), and the drain, every
    partition's delivery, waited with it (t99). Such a partition is left: its reset
    sets where it is read from, at or before the records not delivered."""
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return
    assigned = consumer.assignment()
    for tp, (first, last) in spans.items():
        atp = ensure_aiokafka_TP(tp)
        if atp not in assigned:
            continue
        state = assignment.state_value(atp)
        if state is not None and state.has_valid_position and state.position == last + 1:
            consumer.seek(atp, first)


class Messages(Sequence[Message]):
    """A batch's messages as faust ``Message`` objects, each built from its fetched record
    only when asked for (a dead letter, an origin): the readings agent reads the batch's
    columns off aiokafka's records (``columns``) and never needs one per record.

    faust builds a ``ConsumerMessage`` (thirteen fields, ``Message.__init__`` in Python)
    per record in ``_to_message``; for one reading per message that and the drain's
    loops around it were about 1.4 us of the worker's ~12 us of Python a message, 0.1 us
    after (docs/benchmarks.md, issue 14). A message built here
    is faust's own (``Consumer._to_message``), stamped with the batch's generation, and
    built once: asking again returns the same object."""

    __slots__ = ("_built", "_to_message", "generation", "records", "tp")

    def __init__(
        self,
        tp: TP,
        records: Sequence[Any],
        generation: int,
        to_message: Callable[[TP, Any], Message] | None,
    ) -> None:
        self.tp = tp
        self.records = records
        self.generation = generation
        self._to_message = to_message
        self._built: dict[int, Message] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _message(self, index: int) -> Message:
        if index < 0:
            index += len(self.records)
        message = self._built.get(index)
        if message is None:
            if index < 0:
                raise IndexError("batch index out of range")
            record = self.records[index]  # IndexError past the end, as a list's
            if self._to_message is None:  # the records are messages already
                message = cast(Message, record)
            else:
                message = self._to_message(self.tp, record)
                message.generation_id = self.generation
            self._built[index] = message
        return message

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._message(i) for i in range(*index.indices(len(self.records)))]
        return self._message(index)

    def __iter__(self) -> Iterator[Message]:
        return (self._message(i) for i in range(len(self.records)))

    def columns(self) -> tuple[list[bytes | None], list[int], list[int], list[float]]:
        """The batch's values, partitions, offsets and Kafka timestamps (seconds, as
        faust's ``Message.timestamp``), in offset order, read off the records."""
        records = self.records
        values = [r.value for r in records]
        offsets = [r.offset for r in records]
        if self._to_message is None:  # messages: their timestamps are seconds already
            timestamps = [r.timestamp for r in records]
        else:  # aiokafka's are milliseconds; faust's _to_message divides by 1000.0
            timestamps = [t if t is None else t / 1000.0 for t in [r.timestamp for r in records]]
        return values, [self.tp.partition] * len(records), offsets, timestamps


class Batch:
    """One partition's records of one fetch, in offset order, for a batch agent:
    ``records`` as fetched (aiokafka's ``ConsumerRecord``), ``messages`` the same as
    faust ``Message`` objects built on demand (``Messages``). The last one is built at
    once: it stands for the batch in faust's ``_unacked_messages`` until it is done.

    ``async with batch:`` acks every record when the block ends normally, and leaves
    them unacked (commits stop before them; the next owner reads them again) when it
    raises."""

    __slots__ = ("drain", "generation", "last", "messages", "records", "tp")

    def __init__(
        self,
        drain: BatchDrain,
        tp: TP,
        records: Sequence[Any],
        generation: int,
        to_message: Callable[[TP, Any], Message] | None = None,
    ) -> None:
        """``to_message`` builds a faust ``Message`` from one record (the consumer's
        ``_to_message``); None: ``records`` are ``Message`` objects already."""
        self.drain = drain
        self.tp = tp
        self.records = records
        self.generation = generation
        self.messages = Messages(tp, records, generation, to_message)
        self.last = self.messages[-1]

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drain.done(self, acked=exc_type is None)


class BatchDrain:
    """The batch topics of one app and their queues (at most ``depth`` batches wait per
    topic: the fetcher then waits, which is the back-pressure)."""

    def __init__(self, app: faust.App, depth: int = 2) -> None:
        install()  # the batch path lives in the patched _drain_messages
        self.app = app
        self.depth = depth
        self.queues: dict[str, asyncio.Queue[Batch]] = {}
        setattr(app, DRAIN_ATTRIBUTE, self)

    def register(self, topic: str) -> None:
        """Deliver ``topic``'s messages as batches (an agent must read ``batches``)."""
        self.queues[topic] = asyncio.Queue(self.depth)

    async def batches(self, topic: str) -> AsyncIterator[Batch]:
        """The topic's batches, skipping those fetched before the latest rebalance (they
        are read again from the committed offset). The batch yielded is tracked until
        it is done, so a rebalance waits for it (``Consumer.wait_empty``)."""
        queue = self.queues[topic]
        app = self.app
        while True:
            batch = await queue.get()
            if batch.generation != app.consumer_generation_id or not app.flow_control.is_active():
                continue
            last = batch.last
            app.consumer._unacked_messages.add(last)  # type: ignore[attr-defined]
            on_batch_in = getattr(app.monitor, "on_batch_in", None)
            if on_batch_in is not None:  # faust's message counters, once per batch
                on_batch_in(batch.tp, last.offset, len(batch.records))
            yield batch

    def done(self, batch: Batch, *, acked: bool) -> None:
        """Ack the batch's offsets together (if its generation is current), then release
        it. Not acked: only released, so commits stop before its first offset."""
        consumer = cast(Any, self.app.consumer)
        tp = batch.tp
        with ack_lock:
            if acked and batch.generation == self.app.consumer_generation_id:
                committed = consumer._committed_offset[tp]
                index = consumer._acked_index[tp]
                offsets = [r.offset for r in batch.records]
                # In offset order: below the committed offset only at the head; and an
                # offset already acked only after a redelivery. Both checks in C.
                if committed is not None and offsets[0] < committed:
                    offsets = [o for o in offsets if o >= committed]
                if not index.isdisjoint(offsets):
                    offsets = [o for o in offsets if o not in index]
                index.update(offsets)
                consumer._acked[tp].extend(offsets)
                consumer._n_acked += len(offsets)
            last = batch.last
            last.acked = True
            consumer._unacked_messages.discard(last)
            notify(consumer._waiting_for_ack)


async def _drain_messages(self: Consumer, fetcher: ServiceT) -> None:
    """``Consumer._drain_messages`` of faust 0.15.3 with the two changes above (same
    stop and error handling; ``getmany``'s body is inlined so one generation is read per
    fetch and batch topics can take a partition's records whole)."""
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
    app = self.app
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = app.topics.acks_enabled_for
    to_message = self._to_message
    drain: BatchDrain | None = getattr(app, DRAIN_ATTRIBUTE, None)
    queues = drain.queues if drain is not None else {}
    changelogs = app.tables.changelog_topics
    nexts = next_offsets(self)
    reread = _reread_from(self)
    holes = _holes(self)  # (cleared in place, as nexts and reread, never replaced)

    async def before_delivery(
        tp: TP, offset: int, r_offset: int | None, generation: int, seeks: int
    ) -> bool:
        """The inline commit and the gap, then: may this message still be delivered?"""
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()
            if _stale(self, generation, seeks):
                return False
        expected = None if tp.topic in changelogs else nexts.get(tp)
        verdict = order_verdict(offset, expected, reread.get(tp))
        if verdict == "read again":
            assert expected is not None
            reread[tp] = expected
            note_hole(self, tp, expected, offset - 1)
            await _seek_back(self, tp, expected)
            return False
        if holes and expected is not None:  # per record: a dict's truth when none is open
            settle_hole(self, tp, offset)
        if verdict == "gap":
            assert expected is not None
            if acks_enabled_for(tp.topic):
                # Not ``_add_gap``: it starts a gap one past the committed offset
                # (faust's off-by-one), which change 8's commit would wait on forever.
                self._gap[tp].addi(expected, offset)
                self._gap[tp].merge_overlaps()
            return True
        if expected is not None:
            return True  # in order: faust's rule below is off by one after a seek
        gap = offset - (r_offset or 0)
        if gap > 1 and r_offset and acks_enabled_for(tp.topic):
            # Computed from a read offset of this generation, before any await.
            await self._add_gap(tp, r_offset + 1, offset)
            if _stale(self, generation, seeks):
                return False
        return True

    async def deliver(
        records: Mapping[TP, Sequence[Any]],
        paused: Mapping[TP, Sequence[Any]],
        handled: dict[TP, int],
        generation: int,
        seeks: int,
    ) -> bool:
        """Hand on one fetch's records (batch topics as a batch per partition, the others
        one by one through faust's callback), noting in ``handled`` the last offset of
        each partition handed on. True if it stopped early because the records went
        stale (``_stale``: a rebalance, a stopped flow or a seek since the fetch)."""
        singles: dict[TP, Any] = {}
        for tp, tp_records in records.items():
            if tp in paused:
                continue
            end = _end_offset(self, tp)
            if end is not None:
                app.monitor.track_tp_end_offset(tp, end)
            queue = queues.get(tp.topic)
            if queue is None:
                singles[tp] = tp_records
                continue
            if _stale(self, generation, seeks):
                return True
            r_offset = get_read_offset(tp)
            # A partition's records come in offset order: all fresh if the first is.
            if r_offset is None or tp_records[0].offset >= r_offset:
                fresh = tp_records
            else:
                fresh = [r for r in tp_records if r.offset >= r_offset]
            if not fresh:
                handled[tp] = tp_records[-1].offset
                continue
            if not await before_delivery(tp, fresh[0].offset, r_offset, generation, seeks):
                return True
            # No faust Message per record: the batch keeps aiokafka's records and builds
            # one only when asked (the last at once, a dead letter's).
            batch = Batch(cast(BatchDrain, drain), tp, fresh, generation, to_message)
            if queue.full():
                await queue.put(batch)
                if _stale(self, generation, seeks):
                    # Handed over, and skipped by the agent only on a new generation
                    # or a stopped flow: after a seek alone it is processed, and its
                    # records are also read again (at least once, never lost).
                    return True
            else:
                queue.put_nowait(batch)  # checked and handed over with no await between
            set_read_offset(tp, fresh[-1].offset)
            nexts[tp] = fresh[-1].offset + 1
            handled[tp] = fresh[-1].offset
        num_since_yield = 0
        for tp, record in self.scheduler.iterate(singles):
            num_since_yield += 1
            if num_since_yield > 100:
                await asyncio.sleep(0)
                num_since_yield = 0
            if _stale(self, generation, seeks):
                return True
            offset = record.offset
            r_offset = get_read_offset(tp)
            if r_offset is not None and offset < r_offset:
                handled[tp] = offset
                continue  # read before the last seek: already delivered
            if not await before_delivery(tp, offset, r_offset, generation, seeks):
                return True
            message = to_message(tp, record)
            message.generation_id = generation
            # Awaited directly (faust wraps it in wait_first: four tasks per message):
            # it leaves this task only on a full queue or suspended flow.
            await self.callback(message)
            handled[tp] = offset
            if _stale(self, generation, seeks):
                return True  # the stream skips it on a new generation; else processed
            set_read_offset(tp, offset)
            nexts[tp] = offset + 1
        return False

    loop = asyncio.get_running_loop()
    next_sweep = loop.time() + SWEEP_INTERVAL
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            if loop.time() >= next_sweep and nexts:
                # Between fetches: every record returned so far is delivered or rewound.
                next_sweep = loop.time() + SWEEP_INTERVAL
                try:
                    await _sweep(self, app.consumer_generation_id, _seeks(self))
                except Exception as exc:
                    self.log.warning(f"exception sweeping positions {exc}")
            set_flag(CONSUMER_FETCHING)
            seeks = _seeks(self)  # before the fetch: a seek during it moves the position
            records, active = await self._wait_next_records(1.0)
            generation = app.consumer_generation_id
            await self.sleep(0)
            if records is None or self.should_stop or not records:
                unset_flag(CONSUMER_FETCHING)
                continue
            if not self.flow_active:
                # As getmany: fetched while the flow stopped, so read again from the
                # committed offsets once it resumes; and a changelog's records again
                # from the first one dropped (change 3).
                try:
                    await _rewind_changelogs(self, records)
                    await self.perform_seek()
                except Exception as exc:
                    self.log.warning(f"exception performing seek when flow not active {exc}")
                continue
            # Paused since the fetch began (``active`` is faust's live set, which
            # ``pause_partitions`` changes): faust drops such records and the position
            # stays past them, so a later record's gap (``_add_gap``) committed over
            # them unprocessed. They are read again once the partition resumes (change 5).
            paused = {
                tp: tp_records
                for tp, tp_records in records.items()
                if active is not None and tp not in active and tp not in self._buffered_partitions
            }
            # The last offset of each partition handed on (or passed over as read
            # before) from this fetch: what is past it is rewound if delivery stops.
            handled: dict[TP, int] = {}
            stopped = await deliver(records, paused, handled, generation, seeks)
            if paused or stopped:
                # Records not delivered are read again (changes 5 and 6): each partition
                # whose position is still just past them is seeked back to the first.
                left = {
                    tp: [r for r in tp_records if r.offset > handled.get(tp, -1)]
                    for tp, tp_records in records.items()
                    if tp in paused or stopped
                }
                try:
                    await _rewind(self, left)
                except Exception as exc:
                    self.log.warning(f"exception rewinding undelivered records {exc}")
            unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


class UnreadableRange(tuple[tuple[str, bytes], ...]):
    """The ``headers`` of an unreadable record (change 13): empty as headers go, so no
    code reading headers sees anything, and only this patch makes one (a producer's
    headers are a plain tuple), so an unreadable record cannot be forged. ``first`` and
    ``last``: the range's offsets; ``reason``: what was wrong with its bytes."""

    first: int
    last: int
    reason: str
    # A record read but for its headers (a header name that is not UTF-8): its key and
    # value as sent, which its dead letter keeps; None for bytes that could not be read.
    key: bytes | None
    value: bytes | None

    def __new__(
        cls,
        first: int,
        last: int,
        reason: str,
        key: bytes | None = None,
        value: bytes | None = None,
    ) -> UnreadableRange:
        self = super().__new__(cls, ())
        self.first, self.last, self.reason = first, last, reason
        self.key, self.value = key, value
        return self

    def describe(self, topic: str, partition: int) -> str:
        """The dead letter's message: which offsets, why, and which bytes are left."""
        span = (
            f"offset {self.first}"
            if self.first == self.last
            else (f"offsets {self.first}-{self.last}")
        )
        if self.value is not None or self.key is not None:
            return (
                f"{topic}/{partition} {span}: {self.reason}; its key and value are this "
                "dead letter's, its headers are not kept, skipped"
            )
        return (
            f"{topic}/{partition} {span}: {self.reason}; the records cannot be read "
            "(no key, value or headers are available), skipped"
        )


def unreadable(headers: Any) -> UnreadableRange | None:
    """The ``UnreadableRange`` of a message's or record's ``headers``, or None."""
    return headers if isinstance(headers, UnreadableRange) else None


def _skips_unreadable(topic: str) -> bool:
    """A stream topic's unreadable batches are skipped; a table changelog's are not (its
    table would be recovered with a hole nobody sees)."""
    return not topic.endswith("-changelog")


def _unreadable_end(batch: Any, following: Any) -> int:
    """Where an unreadable batch's range ends (exclusive): the next batch's base offset,
    else the batch's own next offset when plausible, else one past its base."""
    base: int = batch.base_offset
    after = getattr(following, "base_offset", None)  # a legacy batch has none
    if after is not None and base < after <= base + MAX_UNREADABLE_SPAN:
        return int(after)
    if 0 <= batch.last_offset_delta < MAX_UNREADABLE_SPAN:
        return int(batch.next_offset)
    return base + 1


def _unreadable_records(
    self: PartitionRecords, batch: Any, following: Any, why: str
) -> Iterator[ConsumerRecord[Any, Any]]:
    """Change 13: the unreadable records of ``batch`` from the fetch position on (one per
    offset, up to ``_unreadable_end``), after an error line; raises for a changelog."""
    base = getattr(batch, "base_offset", None)
    if base is None:  # a legacy batch (magic 0 or 1, read from corrupted bytes): no range
        first = self.next_fetch_offset
        return _unreadable_range(self, first, first, first + 1, why)
    first = max(base, self.next_fetch_offset)
    return _unreadable_range(self, batch.base_offset, first, _unreadable_end(batch, following), why)


def _unreadable_range(
    self: PartitionRecords, base: int, first: int, end: int, why: str
) -> Iterator[ConsumerRecord[Any, Any]]:
    """The unreadable records ``first`` to ``end`` (exclusive) of a range that begins at
    ``base``, after an error line; raises ``CorruptRecordException`` for a changelog."""
    tp = self._tp
    span = f"{tp.topic}/{tp.partition} offsets {first}-{end - 1}"
    if not _skips_unreadable(tp.topic):
        # Said whole: the worker stops on it (a table cannot be recovered past it).
        raise aiokafka_errors.CorruptRecordException(
            f"Unreadable batch - {tp}: {span} of a table's changelog cannot be read ({why}); "
            'see docs/operations.md, "A record batch that cannot be read"'
        )
    if end > first:
        marker = UnreadableRange(base, end - 1, why)
        log.error("citybrain: %s: %s; skipped, recorded on the dead-letter topic", span, why)
        now = int(time.time() * 1000)
        for offset in range(first, end):
            self.next_fetch_offset = offset + 1
            yield ConsumerRecord(
                tp.topic, tp.partition, offset, now, 0, None, None, None, -1, -1, marker
            )
    self.next_fetch_offset = max(self.next_fetch_offset, end)


class KeptMemoryRecords(MemoryRecords):  # type: ignore[misc]
    """aiokafka's ``MemoryRecords`` that keeps the fetch's bytes it was made of
    (``raw``), so change 13 can read a batch again when aiokafka's reader fails on one of
    its records; the fetcher makes them by this module's name (``RECORD_SOURCES``)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw)
        self.raw = raw


def _batch_bytes(raw: bytes, base: int) -> memoryview | None:
    """The v2 batch of the fetch's bytes ``raw`` whose base offset is ``base`` (each
    batch: base offset int64, length int32, then ``length`` bytes), or None."""
    view, pos = memoryview(raw), 0
    while pos + 12 <= len(view):
        first = int.from_bytes(view[pos : pos + 8], "big", signed=True)
        length = int.from_bytes(view[pos + 8 : pos + 12], "big", signed=True)
        if length < 0 or pos + 12 + length > len(view):
            return None
        if first == base:
            return view[pos : pos + 12 + length]
        pos += 12 + length
    return None


def _nullable(buffer: bytearray, pos: int) -> tuple[bytes | None, int]:
    """A Kafka varint-length byte string at ``pos`` (length -1: null), and the position after."""
    length, pos = decode_varint(buffer, pos)
    if length < 0:
        return None, pos
    return bytes(buffer[pos : pos + length]), pos + length


def _read_again(
    self: PartitionRecords, raw: bytes, batch: Any
) -> Iterator[ConsumerRecord[Any, Any]]:
    """Change 13: ``batch`` (its CRC checked) read again from the fetch's bytes by the
    record layout of Kafka's protocol (KIP-98's v2 record), header names kept as bytes:
    from the fetch position on, each record whose header names are UTF-8 as it would
    have been given, each other one an unreadable record of its own offset that keeps
    its key and value (its dead letter has them). Raises if the bytes are no such batch."""
    framed = _batch_bytes(raw, batch.base_offset)
    if framed is None:
        raise ValueError(f"no batch at offset {batch.base_offset} in the fetch")
    again = _DefaultRecordBatchPy(framed)
    again._maybe_uncompress()
    buffer, pos, tp = again._buffer, again._pos, self._tp
    append_time = again.timestamp_type == again.LOG_APPEND_TIME
    for _ in range(again._num_records):
        length, pos = decode_varint(buffer, pos)
        end = pos + length
        _, pos = decode_varint(buffer, pos)  # the record's attributes: unused
        delta, pos = decode_varint(buffer, pos)
        offset_delta, pos = decode_varint(buffer, pos)
        key, pos = _nullable(buffer, pos)
        value, pos = _nullable(buffer, pos)
        count, pos = decode_varint(buffer, pos)
        names: list[bytes] = []
        values: list[bytes | None] = []
        for _ in range(count):
            name, pos = _nullable(buffer, pos)
            value_of, pos = _nullable(buffer, pos)
            names.append(name or b"")
            values.append(value_of)
        if pos != end or count < 0:
            raise ValueError(f"a record of {length} bytes read as {pos - end + length}")
        offset = again.base_offset + offset_delta
        if offset < self.next_fetch_offset:
            continue
        timestamp = again.max_timestamp if append_time else again.first_timestamp + delta
        self.next_fetch_offset = offset + 1
        bad = next((n for n in names if not _utf8(n)), None)
        if bad is not None:
            why = (
                f"a header name is not UTF-8 ({bytes(bad)[:60]!r}), which Kafka's protocol requires"
            )
            log.error(
                "citybrain: %s/%s offset %d: %s; recorded on the dead-letter topic",
                tp.topic,
                tp.partition,
                offset,
                why,
            )
            marker = UnreadableRange(offset, offset, why, key, value if value is not None else b"")
            yield ConsumerRecord(
                tp.topic, tp.partition, offset, timestamp, 0, None, None, None, -1, -1, marker
            )
            continue
        headers = [(n.decode("utf-8"), v) for n, v in zip(names, values, strict=True)]
        record = _DefaultRecordPy(offset, timestamp, again.timestamp_type, key, value, headers)
        yield self._consumer_record(tp, record)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _skipped_by_the_broker(
    self: PartitionRecords, first: Any
) -> Iterator[ConsumerRecord[Any, Any]]:
    """The offsets a fetch passes over right after a batch that could not be framed (the
    broker skipped the rest of that batch by its length): unreadable records from the
    fetch position up to the fetch's ``first`` batch, when it was fetched from there."""
    at = _FRAMING_BROKE.pop(self._tp, None)
    base = getattr(first, "base_offset", None)  # None: no batch, or a legacy one
    if at is None or base is None or at != self.next_fetch_offset:
        return
    if at < base <= at + MAX_UNREADABLE_SPAN:
        why = f"skipped by the broker with the batch at offset {at - 1}, whose framing is broken"
        yield from _unreadable_range(self, at, at, base, why)


def _hole_reason(base: int) -> str:
    """Why offsets before ``base`` that no batch holds are unreadable records."""
    return (
        f"no record batch holds them (the broker served the batch at offset {base} next: "
        "batches swallowed by a broken batch's length, or removed from the log)"
    )


def _unpack_records(self: PartitionRecords) -> Iterator[ConsumerRecord[Any, Any]]:
    """aiokafka 0.14.0's ``PartitionRecords._unpack_records`` with change 13: a batch
    whose CRC fails, or whose records cannot be decoded (a header name that is not UTF-8,
    a codec that fails), yields one unreadable record per offset instead of raising."""
    tp = self._tp
    records = self._records
    failure: Exception | None = None

    def following() -> Any:
        nonlocal failure
        if failure is not None or not records.has_next():
            return None
        try:
            return records.next_batch()
        except Exception as exc:  # framing past a corrupted batch: raised after it
            failure = exc
            return None

    pending = following()
    if _FRAMING_BROKE:
        yield from _skipped_by_the_broker(self, pending)
    while pending is not None:
        next_batch, pending = pending, following()
        base = getattr(next_batch, "base_offset", None)  # a legacy batch has none
        if base is not None and base > self.next_fetch_offset and _skips_unreadable(tp.topic):
            # Offsets no batch holds, between the fetch position (or the batch before)
            # and this batch: on a stream topic (never compacted) records lost from the
            # log, e.g. swallowed by a broken batch's length. Said, never passed unseen.
            yield from _unreadable_range(
                self, self.next_fetch_offset, self.next_fetch_offset, base, _hole_reason(base)
            )
        if self._check_crcs and not next_batch.validate_crc():
            why = "record batch failed its CRC check (corrupted bytes in the log)"
            yield from _unreadable_records(self, next_batch, pending, why)
            if not hasattr(next_batch, "base_offset"):
                # A legacy magic byte (0 or 1) on the fetch's first batch: aiokafka frames
                # every batch of the fetch by it, so the rest is fetched again after it.
                _FRAMING_BROKE[tp] = self.next_fetch_offset
                return
            continue

        if self._isolation_level == READ_COMMITTED and next_batch.producer_id is not None:
            self._consume_aborted_up_to(next_batch.base_offset)
            if next_batch.is_control_batch and self._contains_abort_marker(next_batch):
                self._aborted_producers.discard(next_batch.producer_id)
            if next_batch.is_transactional and next_batch.producer_id in self._aborted_producers:
                self.next_fetch_offset = next_batch.next_offset
                continue

        # We skip control batches no matter the isolation level
        if next_batch.is_control_batch:
            self.next_fetch_offset = next_batch.next_offset
            continue

        # One try around the whole loop, not a next() per record: this is the per-record
        # path of every fetch, and the except clause costs nothing until it is taken.
        try:
            for record in next_batch:
                if record.offset < self.next_fetch_offset:
                    continue
                consumer_record = self._consumer_record(tp, record)
                self.next_fetch_offset = record.offset + 1
                yield consumer_record
        except Exception as exc:  # a record the client cannot decode: the rest of it
            why = f"a record could not be decoded ({type(exc).__name__}: {exc})"[:300]
            raw = getattr(records, "raw", None)
            if base is not None and raw is not None and _skips_unreadable(tp.topic):
                # Read again from the fetch's bytes, header names kept as bytes: only a
                # record whose header name is not UTF-8 is unreadable, not the rest.
                try:
                    yield from _read_again(self, raw, next_batch)
                except Exception:  # its records' framing is broken: the rest of it, as before
                    pass
                else:
                    self.next_fetch_offset = next_batch.next_offset
                    continue
            yield from _unreadable_records(self, next_batch, pending, why)
            if not hasattr(next_batch, "base_offset"):  # a legacy batch: as above
                _FRAMING_BROKE[tp] = self.next_fetch_offset
                return
            continue
        self.next_fetch_offset = next_batch.next_offset
    if failure is not None:
        # The framing broke (a batch length below any batch's, bytes after a length that
        # ran short, a legacy magic byte): where the broken batch ends, and its own
        # offsets, cannot be read (aiokafka keeps the fetched bytes to itself). Its first
        # offset is the fetch position; one offset at a time, each fetch finds the rest.
        said = str(failure)
        if type(failure).__name__ not in said:
            said = f"{type(failure).__name__}: {said}"
        why = f"record batch framing is broken ({said})"[:300]
        first = self.next_fetch_offset
        yield from _unreadable_range(self, first, first, first + 1, why)
        _FRAMING_BROKE[tp] = first + 1
