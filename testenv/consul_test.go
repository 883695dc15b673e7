package testenv

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConsul starts Consul, writes and reads a KV entry over the HTTP API,
// and checks that Stop/Start keeps it (the agent is not in -dev mode).
func TestConsul(t *testing.T) {
	c := StartConsul(t)
	url := "http://" + c.Addr + "/v1/kv/strata/test/key"
	do := func(method, body string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), resp.StatusCode
	}
	if body, code := do(http.MethodPut, "value-1"); code != http.StatusOK || strings.TrimSpace(body) != "true" {
		t.Fatalf("PUT: %d %s", code, body)
	}
	check := func() {
		t.Helper()
		// ?raw returns the value itself rather than base64 in JSON.
		url := url + "?raw"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "value-1" {
			t.Fatalf("GET: %d %q", resp.StatusCode, b)
		}
	}
	check()

	c.Stop()
	if _, err := http.Get("http://" + c.Addr + "/v1/status/leader"); err == nil {
		t.Fatal("Consul still answers after Stop")
	}
	c.Start()
	check()
}
