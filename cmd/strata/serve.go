package main

import "github.com/spf13/cobra"

// newServeCmd is owned by the broker work; placeholder until it lands.
func newServeCmd() *cobra.Command {
	return &cobra.Command{Use: "serve", Short: "Run a Strata broker"}
}
