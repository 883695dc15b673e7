//go:build !linux

package localstore

import "os"

// writeBatchesAt writes bufs back to back at off. Without pwritev this is one
// pwrite per buffer; Strata's production target is Linux.
func writeBatchesAt(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}
