package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestApplySetTypesAndNesting(t *testing.T) {
	v := map[string]interface{}{"a": map[string]interface{}{"keep": "x"}}
	if err := applySet(v, "a.b=1,a.c=true,d=hello,e={x,y},f.g\\.h=007"); err != nil {
		t.Fatal(err)
	}
	want := map[string]interface{}{
		"a": map[string]interface{}{"keep": "x", "b": 1, "c": true},
		"d": "hello",
		"e": []interface{}{"x", "y"},
		"f": map[string]interface{}{"g.h": "007"},
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v want %#v", v, want)
	}
	if err := applySet(v, "a.keep=null"); err != nil {
		t.Fatal(err)
	}
	if _, ok := v["a"].(map[string]interface{})["keep"]; ok {
		t.Fatal("null did not delete the key")
	}
	if err := applySet(v, "novalue"); err == nil {
		t.Fatal("want an error for a --set without '='")
	}
}

func TestMergeValues(t *testing.T) {
	dst := map[string]interface{}{"a": map[string]interface{}{"x": 1, "y": 2}, "l": []interface{}{1, 2}, "gone": 1}
	src := map[string]interface{}{"a": map[string]interface{}{"y": 3}, "l": []interface{}{9}, "gone": nil}
	got := mergeValues(dst, src)
	want := map[string]interface{}{"a": map[string]interface{}{"x": 1, "y": 3}, "l": []interface{}{9}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v want %#v", got, want)
	}
}

func TestValidateSchema(t *testing.T) {
	schema := map[string]interface{}{
		"type": "object", "additionalProperties": false, "required": []interface{}{"n"},
		"properties": map[string]interface{}{
			"n": map[string]interface{}{"type": "integer", "minimum": 1.0, "maximum": 3.0},
			"s": map[string]interface{}{"type": "string", "enum": []interface{}{"a", "b"}},
			"l": map[string]interface{}{"type": "array", "items": map[string]interface{}{"type": "string", "pattern": "^--"}},
		},
	}
	var errs []string
	validateSchema(schema, map[string]interface{}{"n": 2, "s": "a", "l": []interface{}{"--x"}}, "", &errs)
	if len(errs) != 0 {
		t.Fatalf("valid values rejected: %v", errs)
	}
	validateSchema(schema, map[string]interface{}{"n": 5, "s": "c", "l": []interface{}{"x"}, "z": 1}, "", &errs)
	joined := strings.Join(errs, "\n")
	for _, w := range []string{"greater than the maximum", "is not one of", "does not match", `additional property "z"`} {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in %s", w, joined)
		}
	}
	errs = nil
	validateSchema(schema, map[string]interface{}{}, "", &errs)
	if len(errs) != 1 || !strings.Contains(errs[0], `missing required property "n"`) {
		t.Fatalf("got %v", errs)
	}
}

func TestToYAMLIndentsTwo(t *testing.T) {
	got := toYAML(map[string]interface{}{"a": map[string]interface{}{"b": []interface{}{"c"}}})
	if got != "a:\n  b:\n    - c" {
		t.Fatalf("got %q", got)
	}
}
