// Package txn is the transaction coordinator (KIP-98) as a pure state
// machine, after Kafka's TransactionCoordinator, TransactionStateManager
// and TransactionMetadata: no I/O, no goroutines, the clock passed in. The
// broker does the I/O around it:
//
//   - It owns partitions of __transaction_state (50 by default, like
//     groups' __consumer_offsets) and tells the coordinator which it leads:
//     BeginLoad, LoadRecord for every record from the log start, FinishLoad
//     (which lists the transactions a crashed coordinator left in
//     PrepareCommit/PrepareAbort: their markers must be written), Unload.
//   - Every request becomes a Transition: the record to append to the
//     transactional id's partition (key and value encoded with kmsg's
//     TxnMetadataKey/TxnMetadataValue, so Kafka's tools read them) and the
//     state it leads to. The coordinator marks the id pending, so a
//     concurrent request gets CONCURRENT_TRANSACTIONS; the broker appends
//     the record (acks=all) and calls Complete with the outcome. Only then
//     does the state change (Kafka's prepareTransitionTo /
//     completeTransitionTo).
//   - EndTxn's Complete returns a MarkerJob: the broker writes a commit or
//     abort marker (localstore.BuildControlBatch) to each partition of the
//     transaction (WriteTxnMarkers between brokers), then appends the job's
//     completion record and calls Complete again.
//   - A timer calls Expired(now) and AbortExpired for transactions past
//     transaction.timeout.ms, and ExpireTransactionalIDs for ids idle past
//     transactional.id.expiration.ms.
//
// Strata implements Kafka's transaction version 0 and 1 protocol (clients
// before KIP-890 part 2): the producer epoch changes on InitProducerId,
// fencing and timeouts, not at every commit. A handler must therefore not
// advertise EndTxn v5 or AddPartitionsToTxn v5. The KIP-890 part 1
// verification a partition leader does before accepting a transactional
// batch is VerifyPartitions (AddPartitionsToTxn v4 with verify_only).
package txn
