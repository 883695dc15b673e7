package compose

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper-case: FROM, RUN, COPY, …
	Args string
	Line int
}

// stage is one FROM … section.
type stage struct {
	Base   string // image, global ARGs expanded
	Name   string // AS name; "" when unnamed
	Index  int
	Instrs []instruction
}

// parseDockerfile splits a Dockerfile into its global ARG defaults and its
// stages, the way BuildKit reads the parts we use: comments, `\`
// continuations, ARG before the first FROM, `FROM image [AS name]`.
func parseDockerfile(b []byte) (map[string]string, []stage, error) {
	args := map[string]string{}
	var stages []stage
	var pending strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	n := 0
	flush := func() error {
		text := strings.TrimSpace(pending.String())
		pending.Reset()
		if text == "" {
			return nil
		}
		cmd, rest, _ := strings.Cut(text, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(rest), Line: start}
		switch {
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			st := stage{Index: len(stages)}
			switch {
			case len(f) == 1:
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.Name = f[2]
			default:
				return fmt.Errorf("line %d: FROM %q: want IMAGE [AS NAME]", in.Line, in.Args)
			}
			st.Base = os.Expand(f[0], func(k string) string { return args[k] })
			stages = append(stages, st)
		case len(stages) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case len(stages) == 0:
			return fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
		default:
			stages[len(stages)-1].Instrs = append(stages[len(stages)-1].Instrs, in)
		}
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if pending.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = n
		}
		if cont, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		if err := flush(); err != nil {
			return nil, nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if pending.Len() > 0 {
		return nil, nil, fmt.Errorf("line %d: continuation at end of file", start)
	}
	if len(stages) == 0 {
		return nil, nil, fmt.Errorf("no FROM")
	}
	return args, stages, nil
}

// words splits an instruction's arguments: the JSON (exec) form, or fields.
func words(args string) []string {
	if strings.HasPrefix(args, "[") {
		var l []string
		if json.Unmarshal([]byte(args), &l) == nil {
			return l
		}
	}
	return strings.Fields(args)
}

// copyArgs splits COPY's --flags from its sources and destination.
func copyArgs(args string) (flags map[string]string, srcs []string, dst string) {
	flags = map[string]string{}
	w := words(args)
	for len(w) > 0 && strings.HasPrefix(w[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(w[0], "--"), "=")
		flags[k] = v
		w = w[1:]
	}
	if len(w) == 0 {
		return flags, nil, ""
	}
	return flags, w[:len(w)-1], w[len(w)-1]
}

var goBuildOutput = regexp.MustCompile(`(?:^|\s)-o[ =](\S+)`)

// dockerfileFacts is what the checks learn from the Dockerfile that the
// compose checks need: the binary the final image runs.
type dockerfileFacts struct {
	Entrypoint []string
}

// checkDockerfile checks the Dockerfile at file, built with context dir
// (both absolute), inside module root: stages parse; a golang stage at
// least as new as go.mod's go line builds ./cmd/strata (which exists)
// statically; every COPY source exists in the context and is not excluded
// by .dockerignore; COPY --from names an earlier stage and the binary it
// built; the final image's entrypoint is that binary.
func checkDockerfile(root, contextDir, file string) (dockerfileFacts, []string) {
	var facts dockerfileFacts
	var probs []string
	addf := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	b, err := os.ReadFile(file)
	if err != nil {
		return facts, []string{err.Error()}
	}
	_, stages, err := parseDockerfile(b)
	if err != nil {
		return facts, []string{fmt.Sprintf("%s: %v", file, err)}
	}
	if len(stages) < 2 {
		addf("%s: %d stage(s); want a build stage and a small runtime stage", file, len(stages))
	}
	ignore, err := dockerignore(contextDir)
	if err != nil {
		addf("%v", err)
	}
	goVersion, err := goDirective(filepath.Join(root, "go.mod"))
	if err != nil {
		addf("%v", err)
	}

	built := map[int]string{} // stage index -> binary path it built
	binaryIn := map[string]bool{}
	for _, st := range stages {
		if img, tag, _ := strings.Cut(st.Base, ":"); img == "golang" {
			if !versionAtLeast(tag, goVersion) {
				addf("%s: stage %d builds with golang:%s, older than go.mod's go %s", file, st.Index, tag, goVersion)
			}
		}
		for _, in := range st.Instrs {
			switch in.Cmd {
			case "RUN":
				if !strings.Contains(in.Args, "go build") {
					continue
				}
				if !strings.Contains(in.Args, "CGO_ENABLED=0") {
					addf("%s:%d: go build without CGO_ENABLED=0 (the runtime image has no libc to link against)", file, in.Line)
				}
				f := strings.Fields(in.Args)
				pkg := f[len(f)-1]
				if pkg != "./cmd/strata" {
					addf("%s:%d: go build %s, want ./cmd/strata", file, in.Line, pkg)
				}
				if main, err := os.ReadFile(filepath.Join(contextDir, pkg, "main.go")); err != nil || !strings.Contains(string(main), "package main") || !strings.Contains(string(main), "func main()") {
					addf("%s:%d: %s is not a main package in the context (%v)", file, in.Line, pkg, err)
				}
				if m := goBuildOutput.FindStringSubmatch(in.Args); m != nil {
					built[st.Index] = m[1]
				} else {
					addf("%s:%d: go build without -o: the binary's path is not known", file, in.Line)
				}
			case "COPY", "ADD":
				flags, srcs, dst := copyArgs(in.Args)
				if len(srcs) == 0 {
					addf("%s:%d: %s with no source", file, in.Line, in.Cmd)
					continue
				}
				if from, ok := flags["from"]; ok {
					idx := stageIndex(stages, from)
					if idx < 0 || idx >= st.Index {
						addf("%s:%d: COPY --from=%s names no earlier stage", file, in.Line, from)
						continue
					}
					for _, s := range srcs {
						if built[idx] == "" || path.Clean(s) != path.Clean(built[idx]) {
							addf("%s:%d: COPY --from=%s %s: that stage built %q", file, in.Line, from, s, built[idx])
							continue
						}
						if strings.HasSuffix(dst, "/") {
							binaryIn[path.Join(dst, path.Base(s))] = true
						} else {
							binaryIn[path.Clean(dst)] = true
						}
					}
					continue
				}
				for _, s := range srcs {
					matches, err := filepath.Glob(filepath.Join(contextDir, s))
					if err != nil || len(matches) == 0 {
						addf("%s:%d: %s %s: no such file in the build context", file, in.Line, in.Cmd, s)
					}
				}
			}
		}
	}
	for _, need := range append([]string{"go.mod", "go.sum"}, modulePackageDirs(root)...) {
		if p := ignoredBy(ignore, need); p != "" {
			addf(".dockerignore pattern %q excludes %s, which the build needs", p, need)
		}
	}
	last := stages[len(stages)-1]
	for _, in := range last.Instrs {
		if in.Cmd == "ENTRYPOINT" {
			facts.Entrypoint = words(in.Args)
		}
	}
	switch {
	case len(facts.Entrypoint) == 0:
		addf("%s: the final stage has no ENTRYPOINT", file)
	case !binaryIn[facts.Entrypoint[0]]:
		addf("%s: ENTRYPOINT %s is not the binary copied from the build stage (%v)", file, facts.Entrypoint[0], binaryIn)
	}
	return facts, probs
}

func stageIndex(stages []stage, ref string) int {
	for _, st := range stages {
		if st.Name == ref {
			return st.Index
		}
	}
	if n, err := strconv.Atoi(ref); err == nil && n >= 0 && n < len(stages) {
		return n
	}
	return -1
}

// goDirective reads go.mod's go line ("1.26.8").
func goDirective(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "go" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s: no go directive", gomod)
}

// versionAtLeast compares an image tag's Go version ("1.26", "1.26-alpine")
// with go.mod's major.minor; a newer patch is fetched by the toolchain.
func versionAtLeast(tag, want string) bool {
	num := func(v string) (int, int, bool) {
		v, _, _ = strings.Cut(v, "-")
		f := strings.Split(v, ".")
		if len(f) < 2 {
			return 0, 0, false
		}
		a, err1 := strconv.Atoi(f[0])
		b, err2 := strconv.Atoi(f[1])
		return a, b, err1 == nil && err2 == nil
	}
	ta, tb, ok1 := num(tag)
	wa, wb, ok2 := num(want)
	return ok1 && ok2 && (ta > wa || ta == wa && tb >= wb)
}

// dockerignore reads the context's .dockerignore patterns (none if absent).
func dockerignore(contextDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(contextDir, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pats []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf(".dockerignore: exceptions (%q) are beyond this check; keep the file to plain exclusions", line)
		}
		pats = append(pats, strings.TrimPrefix(line, "/"))
	}
	return pats, nil
}

// ignoredBy returns the pattern that excludes rel (a slash path) or one of
// its parent directories; "**/" matches at any depth.
func ignoredBy(pats []string, rel string) string {
	parts := strings.Split(rel, "/")
	for _, p := range pats {
		for i := 1; i <= len(parts); i++ {
			prefix := strings.Join(parts[:i], "/")
			if ok, _ := path.Match(p, prefix); ok {
				return p
			}
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				for j := 0; j < i; j++ {
					if ok, _ := path.Match(rest, strings.Join(parts[j:i], "/")); ok {
						return p
					}
				}
			}
		}
	}
	return ""
}

// modulePackageDirs lists the module's package directories that
// ./cmd/strata imports (itself included), relative to root.
func modulePackageDirs(root string) []string {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/strata")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return []string{"cmd/strata"}
	}
	var dirs []string
	for _, d := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(root, d); err == nil {
			dirs = append(dirs, filepath.ToSlash(rel))
		}
	}
	return dirs
}
