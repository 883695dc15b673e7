//go:build !linux

package tiering

// adviseHugePages is Linux-only (madvise MADV_HUGEPAGE).
func adviseHugePages([]byte) {}
