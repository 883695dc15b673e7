package compose

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// repoRoot is the module root: two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

func readCompose(t *testing.T, root string) ([]byte, *File) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, f
}

// checker collects problems with a compose file.
type checker struct {
	t     *testing.T
	root  string
	f     *File
	probs []string
}

func (c *checker) addf(format string, a ...any) { c.probs = append(c.probs, fmt.Sprintf(format, a...)) }

// splitHostPort splits host:port, reporting a bad one.
func (c *checker) hostPort(what, hp string) (string, int) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		c.addf("%s %q: %v", what, hp, err)
		return "", 0
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		c.addf("%s %q: bad port", what, hp)
	}
	return h, n
}

// flagValue finds -name=value or -name value in a command (Consul, MinIO).
func flagValue(cmd []string, names ...string) (string, bool) {
	for i, w := range cmd {
		for _, n := range names {
			if v, ok := strings.CutPrefix(w, n+"="); ok {
				return v, true
			}
			if w == n && i+1 < len(cmd) {
				return cmd[i+1], true
			}
		}
	}
	return "", false
}

var (
	mcAlias = regexp.MustCompile(`mc alias set (\S+) (\S+) (\S+) (\S+)`)
	mcMake  = regexp.MustCompile(`mc mb (?:--?[\w-]+ )*(\S+)/(\S+)`)
)

// check runs every check on c.f and returns the problems found.
func (c *checker) check() []string {
	f := c.f
	// Build contexts and Dockerfiles; the strata services are the ones
	// built from the repository's Dockerfile.
	var entrypoint []string
	var brokers []string
	checked := map[string]bool{}
	for _, name := range sortedKeys(f.Services) {
		s := f.Services[name]
		if s.Build == nil {
			if s.Image == "" {
				c.addf("service %s: neither image nor build", name)
			}
			continue
		}
		ctx := filepath.Join(c.root, s.Build.Context)
		if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
			c.addf("service %s: build context %s is not a directory (%v)", name, s.Build.Context, err)
			continue
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		dfPath := filepath.Join(ctx, df)
		if _, err := os.Stat(dfPath); err != nil {
			c.addf("service %s: dockerfile %s: %v", name, df, err)
			continue
		}
		if !checked[dfPath] {
			checked[dfPath] = true
			facts, probs := checkDockerfile(c.root, ctx, dfPath)
			c.probs = append(c.probs, probs...)
			entrypoint = facts.Entrypoint
		}
		brokers = append(brokers, name)
	}
	if len(brokers) != 3 {
		c.addf("%d strata services built from the Dockerfile (%v), want 3", len(brokers), brokers)
	}
	if len(entrypoint) != 1 || filepath.Base(entrypoint[0]) != "strata" {
		c.addf("the image's ENTRYPOINT %q is not the strata binary alone; the commands below assume it", entrypoint)
	}

	// Dependencies and volumes.
	usedVolumes := map[string]bool{}
	hostPorts := map[string]string{}
	for _, name := range sortedKeys(f.Services) {
		s := f.Services[name]
		for dep, cond := range s.DependsOn {
			d, ok := f.Services[dep]
			switch {
			case !ok:
				c.addf("service %s depends on %s, which is not a service", name, dep)
			case cond == "service_healthy" && d.Healthcheck == nil:
				c.addf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			case cond != "service_started" && cond != "service_healthy" && cond != "service_completed_successfully":
				c.addf("service %s: depends_on %s: unknown condition %q", name, dep, cond)
			}
		}
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				continue // anonymous volume
			}
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(c.root, src)); err != nil && strings.HasPrefix(src, ".") {
					c.addf("service %s: bind mount %s: %v", name, src, err)
				}
				continue
			}
			if _, ok := f.Volumes[src]; !ok {
				c.addf("service %s: volume %s is not declared under volumes:", name, src)
			}
			usedVolumes[src] = true
		}
		for _, p := range s.Ports {
			host, _, ok := strings.Cut(p, ":")
			if !ok {
				continue
			}
			if other, dup := hostPorts[host]; dup {
				c.addf("host port %s used by %s and %s", host, other, name)
			}
			hostPorts[host] = name
		}
	}
	for v := range f.Volumes {
		if !usedVolumes[v] {
			c.addf("volume %s is declared but no service uses it", v)
		}
	}

	// MinIO, the bucket it gets, Consul.
	minio, ok := f.Services["minio"]
	if !ok {
		c.addf("no minio service")
	}
	minioPort := 9000
	if a, ok := flagValue(minio.Command, "--address"); ok {
		_, minioPort = c.hostPort("minio --address", a)
	}
	user, pass := minio.Environment["MINIO_ROOT_USER"], minio.Environment["MINIO_ROOT_PASSWORD"]
	if user == "" || len(pass) < 8 {
		c.addf("minio: MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (8+ characters) must be set")
	}
	bucket, bucketService := "", ""
	for _, name := range sortedKeys(f.Services) {
		script := strings.Join(f.Services[name].Command, " ")
		m := mcMake.FindStringSubmatch(script)
		if m == nil {
			continue
		}
		bucket, bucketService = m[2], name
		a := mcAlias.FindStringSubmatch(script)
		if a == nil || a[1] != m[1] {
			c.addf("service %s: mc mb %s/%s without an `mc alias set %s …` before it", name, m[1], m[2], m[1])
			continue
		}
		if a[3] != user || a[4] != pass {
			c.addf("service %s: mc alias credentials are not MinIO's root user", name)
		}
		if u, err := url.Parse(a[2]); err != nil || u.Hostname() != "minio" || u.Port() != strconv.Itoa(minioPort) {
			c.addf("service %s: mc alias URL %s is not the minio service on port %d", name, a[2], minioPort)
		}
		if f.Services[name].DependsOn["minio"] == "" {
			c.addf("service %s creates the bucket but does not depend on minio", name)
		}
	}
	if bucket == "" {
		c.addf("no service creates a bucket (mc mb)")
	}
	consul, ok := f.Services["consul"]
	if !ok {
		c.addf("no consul service")
	}
	if v, _ := flagValue(consul.Command, "-client"); v != "0.0.0.0" {
		c.addf("consul: -client=%q; the HTTP API must listen on 0.0.0.0 for the brokers to reach it", v)
	}
	consulPort := 8500
	if v, ok := flagValue(consul.Command, "-http-port"); ok {
		consulPort, _ = strconv.Atoi(v)
	}

	// The brokers.
	ids := map[int]string{}
	dataVolumes := map[string]string{}
	for _, name := range brokers {
		c.checkBroker(name, f.Services[name], ids, dataVolumes, bucket, bucketService, minioPort, user, pass, consulPort, len(brokers))
	}
	for i := 1; i <= len(brokers); i++ {
		if ids[i] == "" {
			c.addf("no broker has node id %d (node ids %v)", i, ids)
		}
	}
	return c.probs
}

func (c *checker) checkBroker(name string, s Service, ids map[int]string, dataVolumes map[string]string,
	bucket, bucketService string, minioPort int, user, pass string, consulPort, brokers int) {
	if len(s.Entrypoint) > 0 {
		c.addf("%s: entrypoint overridden (%q); the image's is strata", name, s.Entrypoint)
	}
	if len(s.Command) == 0 || s.Command[0] != "serve" {
		c.addf("%s: command %q does not start with serve", name, s.Command)
		return
	}
	args, err := testenv.ParseServeArgs(c.t, s.Command[1:])
	if err != nil {
		c.addf("%s: %v", name, err)
		return
	}
	id, err := strconv.Atoi(args.Last("node-id"))
	switch {
	case err != nil || id < 1:
		c.addf("%s: --node-id %q", name, args.Last("node-id"))
	case ids[id] != "":
		c.addf("%s and %s share node id %d", ids[id], name, id)
	default:
		ids[id] = name
	}
	lh, lp := c.hostPort(name+" --listen", args.Last("listen"))
	if lh != "0.0.0.0" {
		c.addf("%s: --listen on %q; inside a container it must listen on 0.0.0.0 for other containers", name, lh)
	}
	ah, ap := c.hostPort(name+" --advertise", args.Last("advertise"))
	if (ah != name && ah != s.Hostname) || ap != lp {
		c.addf("%s: --advertise %s:%d is not this service's name and listen port %d", name, ah, ap, lp)
	}
	if s.Hostname != "" && s.Hostname != name {
		c.addf("%s: hostname %s differs from the service name", name, s.Hostname)
	}
	published := false
	for _, p := range s.Ports {
		if _, container, ok := strings.Cut(p, ":"); ok && container == strconv.Itoa(lp) {
			published = true
		}
	}
	if !published {
		c.addf("%s: no host port maps to its listen port %d", name, lp)
	}
	if ch, cp := c.hostPort(name+" --consul", args.Last("consul")); ch != "consul" || cp != consulPort {
		c.addf("%s: --consul %s:%d is not the consul service's HTTP port %d", name, ch, cp, consulPort)
	}
	dir := args.Last("data-dir")
	mounted := false
	for _, v := range s.Volumes {
		if src, dst, ok := strings.Cut(v, ":"); ok && strings.TrimSuffix(dst, ":rw") == dir {
			mounted = true
			if other, dup := dataVolumes[src]; dup {
				c.addf("%s and %s share the data volume %s", other, name, src)
			}
			dataVolumes[src] = name
		}
	}
	if dir == "" || !mounted {
		c.addf("%s: --data-dir %q is not a mounted volume (its log would die with the container)", name, dir)
	}
	loc, err := remotestore.ParseURL(args.Last("remote"))
	if err != nil {
		c.addf("%s: --remote: %v", name, err)
	} else {
		u, _ := url.Parse(loc.S3.Endpoint)
		switch {
		case loc.S3.Bucket != bucket:
			c.addf("%s: --remote bucket %q, but %s creates %q", name, loc.S3.Bucket, bucketService, bucket)
		case u == nil || u.Hostname() != "minio" || u.Port() != strconv.Itoa(minioPort):
			c.addf("%s: --remote endpoint %q is not the minio service on port %d", name, loc.S3.Endpoint, minioPort)
		case !loc.S3.PathStyle:
			c.addf("%s: --remote without path_style=true (MinIO needs it)", name)
		}
	}
	if s.Environment["AWS_ACCESS_KEY_ID"] != user || s.Environment["AWS_SECRET_ACCESS_KEY"] != pass {
		c.addf("%s: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not MinIO's root credentials", name)
	}
	if s.DependsOn["consul"] != "service_healthy" || s.DependsOn[bucketService] != "service_completed_successfully" {
		c.addf("%s: must wait for consul (healthy) and %s (completed): %v", name, bucketService, s.DependsOn)
	}
	rf, minISR := 1, 1
	for _, kv := range args["config"] {
		k, v, _ := strings.Cut(kv, "=")
		if !broker.IsBrokerSetting(k) {
			c.addf("%s: -c %s: not a broker config", name, k)
		}
		n, _ := strconv.Atoi(v)
		switch k {
		case "default.replication.factor":
			rf = n
		case "min.insync.replicas":
			minISR = n
		}
	}
	if rf > brokers || minISR > rf {
		c.addf("%s: default.replication.factor=%d, min.insync.replicas=%d with %d brokers", name, rf, minISR, brokers)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestComposeFile checks docker-compose.yml and the Dockerfile it builds:
// every check passes on the files as committed.
func TestComposeFile(t *testing.T) {
	root := repoRoot(t)
	_, f := readCompose(t, root)
	c := &checker{t: t, root: root, f: f}
	for _, p := range c.check() {
		t.Error(p)
	}
}

// TestComposeHeaderCommands runs every `docker compose exec SERVICE strata …`
// command the file's header suggests through the real binary's flag parser
// (with --help, so nothing connects), and checks SERVICE exists.
func TestComposeHeaderCommands(t *testing.T) {
	root := repoRoot(t)
	raw, f := readCompose(t, root)
	bin := testenv.StrataBinary(t)
	line := regexp.MustCompile(`docker compose exec (\S+) strata (.+)$`)
	n := 0
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		if f.Services[m[1]].Build == nil {
			t.Errorf("%q: %s is not a strata service", l, m[1])
		}
		args := strings.Fields(m[2])
		out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("strata %s: %v\n%s", m[2], err, out)
		}
	}
	if n == 0 {
		t.Fatal("the header shows no strata commands")
	}
}

// TestComposeChecksCatchMistakes breaks the committed file in the ways the
// checks exist for and expects each to be reported: the checks can fail.
func TestComposeChecksCatchMistakes(t *testing.T) {
	root := repoRoot(t)
	raw, _ := readCompose(t, root)
	setArg := func(s Service, flag, value string) Service {
		cmd := slices.Clone(s.Command)
		for i, w := range cmd {
			if strings.HasPrefix(w, flag+"=") {
				cmd[i] = flag + "=" + value
			}
		}
		s.Command = cmd
		return s
	}
	for _, tc := range []struct {
		name   string
		break_ func(f *File)
		want   string
	}{
		{"duplicate node id", func(f *File) { f.Services["strata2"] = setArg(f.Services["strata2"], "--node-id", "1") }, "share node id 1"},
		{"consul misspelt", func(f *File) { f.Services["strata3"] = setArg(f.Services["strata3"], "--consul", "consol:8500") }, "is not the consul service"},
		{"advertise another broker", func(f *File) {
			f.Services["strata1"] = setArg(f.Services["strata1"], "--advertise", "strata2:9092")
		}, "--advertise strata2:9092"},
		{"unknown serve flag", func(f *File) {
			s := f.Services["strata1"]
			s.Command = append(slices.Clone(s.Command), "--replicas=3")
			f.Services["strata1"] = s
		}, "unknown flag: --replicas"},
		{"wrong bucket", func(f *File) {
			f.Services["strata2"] = setArg(f.Services["strata2"], "--remote", "s3://other?endpoint=http://minio:9000&path_style=true")
		}, `bucket "other"`},
		{"undeclared volume", func(f *File) { delete(f.Volumes, "strata3-data") }, "strata3-data is not declared"},
		{"shared data volume", func(f *File) {
			s := f.Services["strata2"]
			s.Volumes = []string{"strata1-data:/data"}
			f.Services["strata2"] = s
			delete(f.Volumes, "strata2-data")
		}, "share the data volume strata1-data"},
		{"unknown config", func(f *File) {
			s := f.Services["strata1"]
			s.Command = append(slices.Clone(s.Command), "-c", "replication.factr=3")
			f.Services["strata1"] = s
		}, "replication.factr: not a broker config"},
		{"missing dependency", func(f *File) { delete(f.Services, "createbucket") }, "no service creates a bucket"},
		{"wrong credentials", func(f *File) { f.Services["strata1"].Environment["AWS_SECRET_ACCESS_KEY"] = "x" }, "not MinIO's root credentials"},
		{"missing build context", func(f *File) { f.Services["strata3"].Build.Context = "nope" }, "build context nope"},
		{"consul on loopback", func(f *File) {
			s := f.Services["consul"]
			s.Command = []string{"agent", "-server", "-bootstrap-expect=1"}
			f.Services["consul"] = s
		}, "-client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			// Services share the anchor's maps: copy the ones tests mutate.
			for k, s := range f.Services {
				if s.Build != nil {
					b := *s.Build
					s.Build = &b
				}
				env := Env{}
				for ek, ev := range s.Environment {
					env[ek] = ev
				}
				s.Environment = env
				f.Services[k] = s
			}
			tc.break_(f)
			probs := (&checker{t: t, root: root, f: f}).check()
			if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("no problem mentions %q; got %q", tc.want, probs)
			}
		})
	}
}

// TestComposeParseRefusesUnknownKeys: a misspelt compose key is an error,
// not silently ignored.
func TestComposeParseRefusesUnknownKeys(t *testing.T) {
	_, err := Parse([]byte("services:\n  a:\n    image: x\n    depend_on: [b]\n"))
	if err == nil || !strings.Contains(err.Error(), "depend_on") {
		t.Fatalf("depend_on: %v", err)
	}
	if _, err := Parse([]byte("services: {}\n")); err == nil {
		t.Fatal("no services accepted")
	}
}

// TestComposeDockerfileChecksCatchMistakes runs the Dockerfile checks on
// broken Dockerfiles in a copy of the context's shape.
func TestComposeDockerfileChecksCatchMistakes(t *testing.T) {
	root := repoRoot(t)
	good, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if _, probs := checkDockerfile(root, root, filepath.Join(root, "Dockerfile")); len(probs) > 0 {
		t.Fatalf("committed Dockerfile: %q", probs)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"package that does not exist", "./cmd/strata\n", "./cmd/stratum\n", "./cmd/stratum is not a main package"},
		{"cgo left on", "CGO_ENABLED=0 go build", "go build", "without CGO_ENABLED=0"},
		{"copy from a stage that is not there", "--from=build", "--from=builder", "COPY --from=builder names no earlier stage"},
		{"copy a file that is not there", "COPY go.mod go.sum ./", "COPY go.mod go.sum go.work ./", "go.work: no such file"},
		{"entrypoint elsewhere", `ENTRYPOINT ["/usr/local/bin/strata"]`, `ENTRYPOINT ["/bin/strata"]`, "ENTRYPOINT /bin/strata is not the binary"},
		{"old go", "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.21", "golang:1.21, older than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(good), tc.old) {
				t.Fatalf("Dockerfile no longer contains %q; update the test", tc.old)
			}
			bad := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(bad, []byte(strings.Replace(string(good), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, probs := checkDockerfile(root, root, bad)
			if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("no problem mentions %q; got %q", tc.want, probs)
			}
		})
	}
	if p := ignoredBy([]string{"cmd"}, "cmd/strata"); p != "cmd" {
		t.Errorf(".dockerignore cmd does not exclude cmd/strata")
	}
	if p := ignoredBy([]string{"**/testdata"}, "broker/testdata/x"); p == "" {
		t.Errorf("**/testdata does not match broker/testdata")
	}
	if p := ignoredBy([]string{".git", "*.test"}, "broker"); p != "" {
		t.Errorf("%q excludes broker", p)
	}
}
