package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Kcat returns the path of kcat (Debian's package; .ci/run installs it). Under
// CI a missing kcat fails the test; on a developer machine it skips.
func Kcat(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("kcat is not installed (apt-get install kcat); .ci/run should have installed it")
	}
	t.Skip("kcat not installed; apt-get install kcat")
	return ""
}
