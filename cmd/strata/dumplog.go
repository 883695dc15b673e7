package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/localstore"
)

func newDumpLogCmd() *cobra.Command {
	var deep bool
	cmd := &cobra.Command{
		Use:   "dump-log FILE...",
		Short: "Print the contents of segment (.log), .index and .timeindex files (like kafka-dump-log)",
		Long: `Reads a partition's files directly; no broker is needed.
For a .log file it prints one line per record batch (offsets, position, size,
timestamps, codec, CRC, producer fields); with --deep also one line per record
with its key and value. For .index it prints "offset: N position: P" lines,
for .timeindex "timestamp: T offset: O" lines.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s: missing FILE argument", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, path := range args {
				if err := dumpLog(cmd.OutOrStdout(), path, dumpLogOptions{Deep: deep}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&deep, "deep", false, "also decode and print every record of each batch (decompressing as needed)")
	return cmd
}

type dumpLogOptions struct {
	Deep bool // print records, not just batch headers
}

// dumpLog prints one file in kafka-dump-log's format, choosing the decoder
// by the file's suffix.
func dumpLog(w io.Writer, path string, o dumpLogOptions) error {
	base, err := localstore.ParseSegmentBaseOffset(path)
	if err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	out := bufio.NewWriter(w)
	fmt.Fprintf(out, "Dumping %s\n", path)
	switch ext := filepath.Ext(path); ext {
	case ".log":
		err = dumpSegment(out, path, base, o)
	case ".index":
		err = dumpOffsetIndex(out, path, base)
	case ".timeindex":
		err = dumpTimeIndex(out, path, base)
	default:
		err = fmt.Errorf("unsupported file type %q: want .log, .index or .timeindex", ext)
	}
	if flushErr := out.Flush(); err == nil && flushErr != nil {
		err = fmt.Errorf("write output: %w", flushErr)
	}
	if err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	return nil
}

func dumpOffsetIndex(w io.Writer, path string, base int64) error {
	entries, err := localstore.ReadOffsetIndexFile(path, base)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fmt.Fprintf(w, "offset: %d position: %d\n", e.Offset, e.Position)
	}
	return nil
}

func dumpTimeIndex(w io.Writer, path string, base int64) error {
	entries, err := localstore.ReadTimeIndexFile(path, base)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fmt.Fprintf(w, "timestamp: %d offset: %d\n", e.Timestamp, e.Offset)
	}
	return nil
}

// dumpSegment prints every batch of a .log file. The scan stops at the first
// invalid batch (bad header or CRC); what came before is still printed and
// the error names the position, as kafka-dump-log reports invalid bytes.
func dumpSegment(w io.Writer, path string, base int64, o dumpLogOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(w, "Log starting offset: %d\n", base)
	var buf []byte
	return localstore.ScanSegmentFile(path, func(pos int64, h localstore.BatchHeader) error {
		fmt.Fprintln(w, formatBatchHeader(pos, h))
		if !o.Deep {
			return nil
		}
		buf = growTo(buf, h.Size())
		if _, err := f.ReadAt(buf, pos); err != nil {
			return fmt.Errorf("read batch at position %d: %w", pos, err)
		}
		recs, err := decodeBatchRecords(buf, h)
		if err != nil {
			return fmt.Errorf("batch at position %d: %w", pos, err)
		}
		for _, r := range recs {
			fmt.Fprintln(w, formatRecord(r, h))
		}
		return nil
	})
}

func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// compressionNames are Kafka's names for the codec ids in batch attributes.
var compressionNames = map[int8]string{0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

func compressionName(c int8) string {
	if n, ok := compressionNames[c]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", c)
}

// timestampLabel is how Kafka labels a timestamp of the batch's type.
func timestampLabel(h localstore.BatchHeader) string {
	if h.TimestampType() == 1 {
		return "LogAppendTime"
	}
	return "CreateTime"
}

// formatBatchHeader renders a batch as kafka-dump-log's batch line does.
// Batches reaching this point passed ScanSegmentFile's CRC check, hence
// isvalid: true.
func formatBatchHeader(pos int64, h localstore.BatchHeader) string {
	lastSeq := int64(-1)
	if h.BaseSequence >= 0 {
		lastSeq = int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	}
	return fmt.Sprintf("baseOffset: %d lastOffset: %d count: %d baseSequence: %d lastSequence: %d "+
		"producerId: %d producerEpoch: %d partitionLeaderEpoch: %d isTransactional: %t isControl: %t "+
		"position: %d %s: %d size: %d magic: %d compresscodec: %s crc: %d isvalid: true",
		h.BaseOffset, h.LastOffset(), h.NumRecords, h.BaseSequence, lastSeq,
		h.ProducerID, h.ProducerEpoch, h.PartitionLeaderEpoch, h.IsTransactional(), h.IsControl(),
		pos, timestampLabel(h), h.MaxTimestamp, h.Size(), h.Magic, compressionName(h.Compression()), h.CRC)
}

// formatRecord renders one record as kafka-dump-log --print-data-log does.
func formatRecord(r decodedRecord, h localstore.BatchHeader) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| offset: %d %s: %d keySize: %d valueSize: %d", r.Offset, timestampLabel(h), r.Timestamp, nullableLen(r.Key), nullableLen(r.Value))
	if h.BaseSequence >= 0 {
		fmt.Fprintf(&b, " sequence: %d", int64(h.BaseSequence)+r.OffsetDelta)
	}
	if h.IsControl() {
		fmt.Fprintf(&b, " %s", controlMarker(r.Key))
		return b.String()
	}
	b.WriteString(" headerKeys: [")
	for i, hd := range r.HeaderKeys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(hd)
	}
	fmt.Fprintf(&b, "] key: %s payload: %s", printable(r.Key), printable(r.Value))
	return b.String()
}

// controlMarker names a transaction marker from its control record key
// (version int16, type int16: 0 ABORT, 1 COMMIT).
func controlMarker(key []byte) string {
	if len(key) < 4 {
		return "controlType: unknown"
	}
	switch t := int16(key[2])<<8 | int16(key[3]); t {
	case 0:
		return "endTxnMarker: ABORT"
	case 1:
		return "endTxnMarker: COMMIT"
	default:
		return fmt.Sprintf("controlType: %d", t)
	}
}

func nullableLen(b []byte) int {
	if b == nil {
		return -1
	}
	return len(b)
}

// printable returns b as text, or Go-quoted when it holds bytes that would
// garble a terminal (invalid UTF-8, control characters); null is "null".
func printable(b []byte) string {
	if b == nil {
		return "null"
	}
	s := string(b)
	for _, r := range s {
		if r == '\uFFFD' || r < ' ' || r == 0x7f {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
