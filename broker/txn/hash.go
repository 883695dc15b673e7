package txn

import "github.com/strata-broker/strata/broker/kafkahash"

// partitionFor is Kafka's TransactionStateManager.partitionFor.
func partitionFor(id string, n int32) int32 { return kafkahash.PartitionFor(id, n) }

// OffsetsTopic is the internal topic AddOffsetsToTxn adds a partition of.
const OffsetsTopic = "__consumer_offsets"

// StateTopic is the internal topic the coordinator's records go to.
const StateTopic = "__transaction_state"
