package txn

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the coordinator's broker settings, by Kafka's names.
type Config struct {
	// MaxTimeout is transaction.max.timeout.ms: InitProducerId with a
	// larger transaction.timeout.ms gets INVALID_TRANSACTION_TIMEOUT.
	// Default 15 minutes.
	MaxTimeout time.Duration
	// IDExpiration is transactional.id.expiration.ms: an id with no
	// transaction in flight and no update for this long is forgotten
	// (tombstoned). Default 7 days.
	IDExpiration time.Duration
	// StatePartitions is transaction.state.log.num.partitions, the
	// partition count of __transaction_state. Default 50.
	StatePartitions int32
	// OffsetsPartitions is offsets.topic.num.partitions: AddOffsetsToTxn
	// adds the group's partition of __consumer_offsets. Default 50.
	OffsetsPartitions int32
}

// EnsureDefaults fills zero fields with Kafka's defaults.
func (c *Config) EnsureDefaults() {
	if c.MaxTimeout == 0 {
		c.MaxTimeout = 15 * time.Minute
	}
	if c.IDExpiration == 0 {
		c.IDExpiration = 7 * 24 * time.Hour
	}
	if c.StatePartitions == 0 {
		c.StatePartitions = 50
	}
	if c.OffsetsPartitions == 0 {
		c.OffsetsPartitions = 50
	}
}

// Validate reports settings the coordinator cannot honour.
func (c Config) Validate() error {
	var errs []error
	if c.MaxTimeout <= 0 || c.MaxTimeout.Milliseconds() > 1<<31-1 {
		errs = append(errs, fmt.Errorf("transaction.max.timeout.ms %v must be positive and fit an int32 of milliseconds", c.MaxTimeout))
	}
	if c.IDExpiration <= 0 {
		errs = append(errs, fmt.Errorf("transactional.id.expiration.ms %v must be positive", c.IDExpiration))
	}
	if c.StatePartitions <= 0 {
		errs = append(errs, fmt.Errorf("transaction.state.log.num.partitions %d must be positive", c.StatePartitions))
	}
	if c.OffsetsPartitions <= 0 {
		errs = append(errs, fmt.Errorf("offsets.topic.num.partitions %d must be positive", c.OffsetsPartitions))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("txn: invalid config: %w", err)
	}
	return nil
}
