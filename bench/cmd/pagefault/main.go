// Command pagefault measures what a minor page fault costs on this machine:
// it touches 1 GiB of fresh anonymous memory one 4 KiB page at a time, then
// again (mapped), and prints the time per fault. BENCHMARKS.md's replay
// section uses it to explain the broker's CPU per GB.
//
//	go run ./bench/cmd/pagefault
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func main() {
	const size, page = 1 << 30, 4096
	for round := 0; round < 3; round++ {
		b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pagefault:", err)
			os.Exit(1)
		}
		start := time.Now()
		for i := 0; i < size; i += page {
			b[i] = 1
		}
		fresh := time.Since(start)
		start = time.Now()
		for i := 0; i < size; i += page {
			b[i] = 2
		}
		mapped := time.Since(start)
		syscall.Munmap(b)
		fmt.Printf("1 GiB in 4 KiB pages: first touch %v (%.2f µs per fault), again %v\n",
			fresh.Round(time.Millisecond), float64(fresh.Nanoseconds())/1e3/float64(size/page), mapped.Round(time.Millisecond))
	}
}
