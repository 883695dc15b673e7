package localstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Strata's own per-partition files. Kafka keeps log-start-offset and
// recovery-point checkpoints per data directory (one file for all
// partitions); Strata keeps them per partition directory so a partition is
// self-contained and needs no cross-partition lock.
const (
	logStartOffsetFile  = "log-start-offset"
	recoveryPointFile   = "recovery-point"
	cleanShutdownFile   = "clean-shutdown"
	epochCheckpointFile = "leader-epoch-checkpoint"
	// highWatermarkFile is the replication high watermark a replica last
	// knew (Kafka's replication-offset-checkpoint, per partition here).
	highWatermarkFile = "high-watermark"
)

// writeFileAtomic writes data to path via a temporary file and rename, so a
// crash leaves either the old or the new content. With sync it fsyncs the
// file and the directory, making the new content durable on return.
func writeFileAtomic(path string, data []byte, sync bool) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("localstore: write %s: %w", tmp, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("localstore: sync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("localstore: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	if sync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir fsyncs a directory so that creations, renames and removals in it
// survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("localstore: sync dir %s: %w", dir, err)
	}
	return nil
}

// writeOffsetCheckpoint durably stores one offset as "0\n<offset>\n" (a
// version line, like Kafka's checkpoint files).
func writeOffsetCheckpoint(path string, offset int64) error {
	return writeFileAtomic(path, []byte("0\n"+strconv.FormatInt(offset, 10)+"\n"), true)
}

// readOffsetCheckpoint returns the stored offset, or found=false if the file
// does not exist.
func readOffsetCheckpoint(path string) (offset int64, found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("localstore: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "0" {
		return 0, false, fmt.Errorf("%w: bad checkpoint file %s", ErrCorruption, path)
	}
	offset, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || offset < 0 {
		return 0, false, fmt.Errorf("%w: bad checkpoint file %s", ErrCorruption, path)
	}
	return offset, true, nil
}
