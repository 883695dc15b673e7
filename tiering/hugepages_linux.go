//go:build linux

package tiering

import (
	"syscall"
	"unsafe"
)

// adviseHugePages asks the kernel to back the 2 MiB-aligned part of b with
// transparent huge pages (when THP is in "madvise" mode): one fault per
// 2 MiB instead of 512.
func adviseHugePages(b []byte) {
	const huge = 2 << 20
	if len(b) < huge {
		return
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	end := start + uintptr(len(b))
	a := (start + huge - 1) &^ (huge - 1)
	z := end &^ (huge - 1)
	if z <= a {
		return
	}
	const madvHugepage = 14
	syscall.Syscall(syscall.SYS_MADVISE, a, z-a, madvHugepage)
}
