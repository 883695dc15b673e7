package localstore

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// PartitionDir is a partition's folder under a data directory, Kafka's
// "<topic>-<partition>".
func PartitionDir(dataDir, topic string, partition int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
}

var partitionDirName = regexp.MustCompile(`^(.+)-(\d+)$`)

// RemoveOrphanDirs deletes the partition folders under dataDir for which keep
// says false: a crash between deleting a topic's metadata and removing its
// folders leaves them, and so does a replica moved to another broker. The
// metadata is the source of truth; data it does not reference is
// unreachable. It returns the folders it removed.
func RemoveOrphanDirs(dataDir string, keep func(topic string, partition int32) bool, logger *slog.Logger) []string {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		m := partitionDirName.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		idx, err := strconv.ParseInt(m[2], 10, 32)
		if err != nil || keep(m[1], int32(idx)) {
			continue
		}
		path := filepath.Join(dataDir, e.Name())
		logger.Warn("localstore: removing partition folder no topic owns", "dir", path)
		if err := os.RemoveAll(path); err != nil {
			logger.Error("localstore: remove orphan partition folder", "dir", path, "err", err)
			continue
		}
		removed = append(removed, path)
	}
	return removed
}
