// Package compose checks the repository's docker-compose.yml and Dockerfile
// without a Docker engine: that they parse, and that everything they name
// exists — build contexts, Dockerfile stages and the files they copy, the
// strata command lines (parsed by the real `strata serve` flag set), the
// services, volumes, credentials and addresses the brokers point at.
package compose

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is the part of the Compose specification docker-compose.yml uses.
// Decoding refuses unknown keys, so a misspelt key (depend_on) fails the
// check instead of being ignored as Compose would not.
type File struct {
	Name     string             `yaml:"name"`
	XStrata  yaml.Node          `yaml:"x-strata"` // the anchor the brokers merge
	Services map[string]Service `yaml:"services"`
	Volumes  map[string]*Volume `yaml:"volumes"`
}

// Volume is a top-level named volume (empty in our file: Docker's defaults).
type Volume struct {
	Driver string `yaml:"driver"`
}

// Service is one compose service.
type Service struct {
	Image       string       `yaml:"image"`
	Build       *Build       `yaml:"build"`
	Hostname    string       `yaml:"hostname"`
	Entrypoint  Words        `yaml:"entrypoint"`
	Command     Words        `yaml:"command"`
	Environment Env          `yaml:"environment"`
	Ports       []string     `yaml:"ports"`
	Volumes     []string     `yaml:"volumes"`
	DependsOn   DependsOn    `yaml:"depends_on"`
	Healthcheck *Healthcheck `yaml:"healthcheck"`
	Restart     string       `yaml:"restart"`
}

// Build is a service's build section (the short form is a context path).
type Build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *Build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain Build
	return n.Decode((*plain)(b))
}

// Healthcheck is a service's health check.
type Healthcheck struct {
	Test     Words  `yaml:"test"`
	Interval string `yaml:"interval"`
	Timeout  string `yaml:"timeout"`
	Retries  int    `yaml:"retries"`
}

// Words is a command as a list, or as one string Compose splits on spaces
// (we split on whitespace: enough to find flags, and the strata commands
// are lists).
type Words []string

func (w *Words) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*w = strings.Fields(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*w = l
	return nil
}

// Env is environment as a mapping or as a list of NAME=value.
type Env map[string]string

func (e *Env) UnmarshalYAML(n *yaml.Node) error {
	*e = Env{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	m := map[string]string{}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*e)[k] = v
	}
	return nil
}

// DependsOn maps a service's dependencies to their condition
// (service_started for the list form).
type DependsOn map[string]string

func (d *DependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = DependsOn{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, s := range l {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		c := v.Condition
		if c == "" {
			c = "service_started"
		}
		(*d)[k] = c
	}
	return nil
}

// Parse decodes a compose file, refusing unknown keys.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	if len(f.Services) == 0 {
		return nil, fmt.Errorf("compose: no services")
	}
	return &f, nil
}
