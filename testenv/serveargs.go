package testenv

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// ServeArgs is a `strata serve` command line as the real binary parses it:
// each flag given, by long name, with its values in order (-c arrives as
// "config").
type ServeArgs map[string][]string

// Last is the flag's last value ("" when not given): what serve uses.
func (a ServeArgs) Last(name string) string {
	v := a[name]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// ParseServeArgs checks args (what follows `strata serve`) against the real
// binary's flag set, so a command line written elsewhere (docker-compose.yml,
// a README, StartCluster) is known to parse: the binary itself must accept
// it (`strata serve ARGS --help` parses every flag and its value's type, then
// prints help instead of serving), and the flag names and kinds read from
// that help then split it into values, refusing positional arguments.
func ParseServeArgs(t testing.TB, args []string) (ServeArgs, error) {
	t.Helper()
	bin := StrataBinary(t)
	cmd := exec.Command(bin, append(append([]string{"serve"}, args...), "--help")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("testenv: strata serve %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	fs, values, err := serveFlagSet(stdout.String())
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("testenv: strata serve %s: %w", strings.Join(args, " "), err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("testenv: strata serve takes no arguments, got %q", fs.Args())
	}
	out := ServeArgs{}
	fs.Visit(func(f *pflag.Flag) { out[f.Name] = *values[f.Name] })
	return out, nil
}

// helpFlagLine matches a pflag usage line: "  -c, --config stringArray  …"
// or "      --consul string  …"; a bool flag has no type word.
var helpFlagLine = regexp.MustCompile(`^\s+(?:-(\w), )?--([\w-]+)(?: (\w+))?\s`)

// serveFlagSet builds a flag set with serve's flag names and kinds from its
// help text, collecting every value of every flag.
func serveFlagSet(help string) (*pflag.FlagSet, map[string]*[]string, error) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	values := map[string]*[]string{}
	inFlags := false
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "Flags:") {
			inFlags = true
			continue
		}
		if !inFlags {
			continue
		}
		if strings.TrimSpace(line) == "" {
			break
		}
		m := helpFlagLine.FindStringSubmatch(line)
		if m == nil {
			return nil, nil, fmt.Errorf("testenv: unreadable flag line in strata serve --help: %q", line)
		}
		short, name, kind := m[1], m[2], m[3]
		v := new([]string)
		values[name] = v
		if kind == "" {
			fs.VarPF(&boolList{v}, name, short, "").NoOptDefVal = "true"
		} else {
			fs.VarP(&stringList{v}, name, short, "")
		}
	}
	if len(values) == 0 {
		return nil, nil, fmt.Errorf("testenv: no flags found in strata serve --help")
	}
	return fs, values, nil
}

// stringList collects every value given to a flag.
type stringList struct{ v *[]string }

func (l *stringList) String() string     { return strings.Join(*l.v, ",") }
func (l *stringList) Set(s string) error { *l.v = append(*l.v, s); return nil }
func (l *stringList) Type() string       { return "string" }

// boolList is stringList for a flag that may stand alone (--flag).
type boolList struct{ v *[]string }

func (l *boolList) String() string     { return strings.Join(*l.v, ",") }
func (l *boolList) Set(s string) error { *l.v = append(*l.v, s); return nil }
func (l *boolList) Type() string       { return "bool" }
