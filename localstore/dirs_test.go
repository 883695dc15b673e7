package localstore

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveOrphanDirsKeepsOwnedAndOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"orders-0", "orders-1", "gone-0", "my-topic-with-dashes-3", "not_a_partition"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "stray-7"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := func(topic string, p int32) bool {
		return (topic == "orders" && p == 0) || (topic == "my-topic-with-dashes" && p == 3)
	}
	removed := RemoveOrphanDirs(dir, keep, slog.Default())
	if len(removed) != 2 {
		t.Fatalf("removed %v, want orders-1 and gone-0", removed)
	}
	for _, d := range []string{"orders-0", "my-topic-with-dashes-3", "not_a_partition", "stray-7"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Errorf("%s should stay: %v", d, err)
		}
	}
	for _, d := range []string{"orders-1", "gone-0"} {
		if _, err := os.Stat(filepath.Join(dir, d)); !os.IsNotExist(err) {
			t.Errorf("%s should be gone: %v", d, err)
		}
	}
	if got := PartitionDir(dir, "orders", 12); got != filepath.Join(dir, "orders-12") {
		t.Fatalf("PartitionDir = %s", got)
	}
}
