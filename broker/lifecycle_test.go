package broker_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
)

// TestCloseAtAnyMoment closes brokers before Serve, racing Serve's start,
// while connections are being accepted, and after Serve is running — the
// orderings that made Close wait on a WaitGroup that Serve was still adding
// to (issue 10). Run with -race; each case repeats to catch the race.
func TestCloseAtAnyMoment(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(t *testing.T, dir string) *broker.Broker {
		t.Helper()
		b, err := broker.New(broker.Options{DataDir: dir, Listen: "127.0.0.1:0", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	serve := func(b *broker.Broker) <-chan error {
		done := make(chan error, 1)
		go func() { done <- b.Serve() }()
		return done
	}
	wait := func(t *testing.T, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Serve did not return after Close")
		}
	}
	dir := t.TempDir()
	const rounds = 25
	t.Run("before serve", func(t *testing.T) {
		for i := 0; i < rounds; i++ {
			b := open(t, dir)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			// Serve after Close returns at once and starts nothing.
			wait(t, serve(b))
		}
	})
	t.Run("racing serve", func(t *testing.T) {
		for i := 0; i < rounds; i++ {
			b := open(t, dir)
			done := serve(b)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			wait(t, done)
		}
	})
	t.Run("during accepts", func(t *testing.T) {
		for i := 0; i < rounds/5; i++ {
			b := open(t, dir)
			done := serve(b)
			var wg sync.WaitGroup
			for j := 0; j < 4; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()), kgo.RetryTimeout(time.Second))
					if err != nil {
						return
					}
					defer cl.Close()
					ctx, cancel := contextWithTimeout(2 * time.Second)
					defer cancel()
					cl.Ping(ctx)
				}()
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			wait(t, done)
		}
	})
	t.Run("after serve and twice", func(t *testing.T) {
		b := open(t, dir)
		done := serve(b)
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := contextWithTimeout(30 * time.Second)
		defer cancel()
		if err := cl.Ping(ctx); err != nil {
			t.Fatalf("ping a running broker: %v", err)
		}
		cl.Close()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		wait(t, done)
	})
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
