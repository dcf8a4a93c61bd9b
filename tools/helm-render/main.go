// helm-render renders a Helm chart the way `helm template` does, for the subset of Helm that
// Doorman's chart uses (the helm binary cannot be installed on our machines).
//
// Implemented: Chart.yaml, values.yaml merged with -f files (deep merge, in order) and --set
// a.b.c=v (comma-separated; ints, bools and null parsed like helm; no list indexes);
// values.schema.json validation (subset: type, properties, required, additionalProperties:false,
// enum, minimum, maximum, minLength, maxLength, pattern, items); templates/*.yaml|*.tpl|*.txt parsed as one
// set (named templates shared); Go text/template + sprig (TxtFuncMap) + helm's include, tpl,
// required, toYaml, fromYaml, toJson, lookup (always empty, as in helm template); .Values,
// .Release (Name, Namespace, Service, IsInstall, IsUpgrade, Revision), .Chart (Name, Version,
// AppVersion, Description), .Capabilities (KubeVersion, APIVersions.Has), .Template (Name,
// BasePath); missing keys render empty as helm does. Output: one "---" document per non-empty
// template with a "# Source:" line; --include-crds prints crds/ first; --notes prints the
// rendered NOTES.txt instead.
// Not implemented: subcharts/dependencies, hooks, .Files, lookup against a cluster, --set-string,
// list indexes in --set, the full JSON-Schema vocabulary.
//
// Build offline with Debian's Go sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o build/helm-render ./tools/helm-render
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "helm-render: "+format+"\n", args...)
	os.Exit(1)
}

func readYAML(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		fail("%s: %v", path, err)
	}
	if out == nil {
		out = map[string]interface{}{}
	}
	return out
}

// mergeValues deep-merges src into dst (src wins; maps merge, everything else replaces; a null
// in src deletes the key, as helm does).
func mergeValues(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func parseSetValue(s string) interface{} {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && (s == "0" || !strings.HasPrefix(s, "0")) {
		return int(i)
	}
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		var list []interface{}
		for _, p := range strings.Split(s[1:len(s)-1], ",") {
			if p != "" {
				list = append(list, parseSetValue(p))
			}
		}
		return list
	}
	return s
}

// applySet applies one --set argument: a.b=v[,c.d=w]; "\," escapes a comma, "\." a dot.
func applySet(values map[string]interface{}, arg string) error {
	var parts []string
	cur := ""
	depth := 0
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		switch {
		case c == '\\' && i+1 < len(arg):
			cur += string(c) + string(arg[i+1])
			i++
		case c == '{':
			depth++
			cur += string(c)
		case c == '}':
			depth--
			cur += string(c)
		case c == ',' && depth == 0:
			parts = append(parts, cur)
			cur = ""
		default:
			cur += string(c)
		}
	}
	parts = append(parts, cur)
	for _, p := range parts {
		eq := strings.Index(p, "=")
		if eq <= 0 {
			return fmt.Errorf("--set %q: want key=value", p)
		}
		key, val := p[:eq], strings.ReplaceAll(p[eq+1:], `\,`, ",")
		var path []string
		seg := ""
		for i := 0; i < len(key); i++ {
			if key[i] == '\\' && i+1 < len(key) {
				seg += string(key[i+1])
				i++
			} else if key[i] == '.' {
				path = append(path, seg)
				seg = ""
			} else {
				seg += string(key[i])
			}
		}
		path = append(path, seg)
		m := values
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				m[k] = next
			}
			m = next
		}
		v := parseSetValue(val)
		if v == nil {
			delete(m, path[len(path)-1])
		} else {
			m[path[len(path)-1]] = v
		}
	}
	return nil
}

// validateSchema checks values against the JSON-Schema subset documented above.
func validateSchema(schema map[string]interface{}, v interface{}, path string, errs *[]string) {
	if t, ok := schema["type"]; ok {
		types := []string{}
		switch tt := t.(type) {
		case string:
			types = append(types, tt)
		case []interface{}:
			for _, x := range tt {
				types = append(types, x.(string))
			}
		}
		okType := false
		for _, ty := range types {
			if typeMatches(ty, v) {
				okType = true
			}
		}
		if !okType {
			*errs = append(*errs, fmt.Sprintf("%s: got %s, want %s", orRoot(path), typeName(v), strings.Join(types, " or ")))
			return
		}
	}
	if enum, ok := schema["enum"].([]interface{}); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			*errs = append(*errs, fmt.Sprintf("%s: %v is not one of %v", orRoot(path), v, enum))
		}
	}
	if n, ok := toFloat(v); ok {
		if min, ok := toFloat(schema["minimum"]); ok && n < min {
			*errs = append(*errs, fmt.Sprintf("%s: %v is less than the minimum %v", orRoot(path), v, min))
		}
		if max, ok := toFloat(schema["maximum"]); ok && n > max {
			*errs = append(*errs, fmt.Sprintf("%s: %v is greater than the maximum %v", orRoot(path), v, max))
		}
	}
	if s, ok := v.(string); ok {
		if min, ok := toFloat(schema["minLength"]); ok && float64(len(s)) < min {
			*errs = append(*errs, fmt.Sprintf("%s: shorter than %v", orRoot(path), min))
		}
		if max, ok := toFloat(schema["maxLength"]); ok && float64(utf8.RuneCountInString(s)) > max {
			*errs = append(*errs, fmt.Sprintf("%s: longer than %v", orRoot(path), max))
		}
		if pat, ok := schema["pattern"].(string); ok && !regexp.MustCompile(pat).MatchString(s) {
			*errs = append(*errs, fmt.Sprintf("%s: %q does not match %s", orRoot(path), s, pat))
		}
	}
	if m, ok := v.(map[string]interface{}); ok {
		props, _ := schema["properties"].(map[string]interface{})
		if req, ok := schema["required"].([]interface{}); ok {
			for _, r := range req {
				if _, present := m[r.(string)]; !present {
					*errs = append(*errs, fmt.Sprintf("%s: missing required property %q", orRoot(path), r))
				}
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]interface{}); ok {
				validateSchema(ps, m[k], path+"."+k, errs)
			} else if ap, ok := schema["additionalProperties"]; ok {
				if b, isBool := ap.(bool); isBool && !b {
					*errs = append(*errs, fmt.Sprintf("%s: additional property %q not allowed", orRoot(path), k))
				} else if aps, isMap := ap.(map[string]interface{}); isMap {
					validateSchema(aps, m[k], path+"."+k, errs)
				}
			}
		}
	}
	if l, ok := v.([]interface{}); ok {
		if items, ok := schema["items"].(map[string]interface{}); ok {
			for i, it := range l {
				validateSchema(items, it, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	}
}

func orRoot(p string) string {
	if p == "" {
		return "values"
	}
	return "values" + p
}

func toFloat(v interface{}) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func typeName(v interface{}) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64:
		return "integer"
	case float64:
		return "number"
	case string:
		return "string"
	case []interface{}:
		return "array"
	case map[string]interface{}:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func typeMatches(t string, v interface{}) bool {
	got := typeName(v)
	if t == "number" && got == "integer" {
		return true
	}
	if t == "integer" && got == "number" {
		f := v.(float64)
		return f == float64(int64(f))
	}
	return t == got
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

type capabilities struct {
	KubeVersion struct{ Version, Major, Minor, GitVersion string }
	APIVersions apiVersions
}

type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func main() {
	var valueFiles, sets listFlag
	name := flag.String("name", "doorman", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	includeCRDs := flag.Bool("include-crds", false, "also print the chart's crds/*.yaml (first, as helm does)")
	flag.Var(&valueFiles, "f", "values file (repeatable, later wins)")
	flag.Var(&sets, "set", "key=value overrides (repeatable)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-name N] [-namespace NS] [-f values.yaml]... [-set a.b=c]... [-notes] CHART_DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	chartDir := flag.Arg(0)
	chart := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	values := readYAML(filepath.Join(chartDir, "values.yaml"))
	for _, f := range valueFiles {
		values = mergeValues(values, readYAML(f))
	}
	for _, s := range sets {
		if err := applySet(values, s); err != nil {
			fail("%v", err)
		}
	}
	if data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json")); err == nil {
		var schema map[string]interface{}
		if err := json.Unmarshal(data, &schema); err != nil {
			fail("values.schema.json: %v", err)
		}
		// Validate a JSON round-trip of the values, as helm does.
		raw, _ := json.Marshal(values)
		var jv interface{}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		_ = dec.Decode(&jv)
		jv = normalizeNumbers(jv)
		var errs []string
		validateSchema(schema, jv, "", &errs)
		if len(errs) > 0 {
			fail("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n- %s",
				chart["name"], strings.Join(errs, "\n- "))
		}
	}

	caps := capabilities{APIVersions: apiVersions{"v1", "apps/v1", "rbac.authorization.k8s.io/v1",
		"networking.k8s.io/v1", "coordination.k8s.io/v1", "apiextensions.k8s.io/v1"}}
	caps.KubeVersion.Version, caps.KubeVersion.GitVersion = "v1.32.0", "v1.32.0"
	caps.KubeVersion.Major, caps.KubeVersion.Minor = "1", "32"
	str := func(k string) string { s, _ := chart[k].(string); return s }
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{"Name": *name, "Namespace": *namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart": map[string]interface{}{"Name": str("name"), "Version": str("version"),
			"AppVersion": str("appVersion"), "Description": str("description")},
		"Capabilities": caps,
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(...interface{}) map[string]interface{} { return map[string]interface{}{} }
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, n, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	root.Funcs(funcs)

	tdir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(tdir)
	if err != nil {
		fail("%v", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		n := e.Name()
		data, err := os.ReadFile(filepath.Join(tdir, n))
		if err != nil {
			fail("%v", err)
		}
		full := str("name") + "/templates/" + n
		if _, err := root.New(full).Parse(string(data)); err != nil {
			fail("parse %s: %v", full, err)
		}
		names = append(names, full)
	}
	sort.Strings(names)
	var out strings.Builder
	if *includeCRDs && !*notes {
		crds, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
		sort.Strings(crds)
		for _, c := range crds {
			data, err := os.ReadFile(c)
			if err != nil {
				fail("%v", err)
			}
			for _, doc := range splitDocs(string(data)) {
				if strings.TrimSpace(stripComments(doc)) != "" {
					out.WriteString("---\n# Source: " + str("name") + "/crds/" + filepath.Base(c) + "\n" + strings.TrimLeft(doc, "\n") + "\n")
				}
			}
		}
	}
	for _, full := range names {
		base := filepath.Base(full)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != *notes || (!isNotes && !strings.HasSuffix(base, ".yaml")) {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": full, "BasePath": str("name") + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			fail("render %s: %v", full, err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if *notes {
			out.WriteString(text)
			continue
		}
		for _, doc := range splitDocs(text) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			out.WriteString("---\n# Source: " + full + "\n" + strings.TrimLeft(doc, "\n") + "\n")
		}
	}
	fmt.Print(out.String())
}

func splitDocs(s string) []string {
	return regexp.MustCompile(`(?m)^---\s*$`).Split(s, -1)
}

func stripComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func normalizeNumbers(v interface{}) interface{} {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i)
		}
		f, _ := t.Float64()
		return f
	case map[string]interface{}:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
	case []interface{}:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
	}
	return v
}
