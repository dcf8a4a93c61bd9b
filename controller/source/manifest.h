// Manifest files (--manifests): multi-document YAML → JSON objects, and the set of objects all
// files currently contribute. Pure: no file-system access (the file watcher reads the bytes).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "controller/model/diagnostic.h"
#include "controller/model/object.h"

namespace doorman::controller {

// A problem with one file or one document of it. `line` is 1-based (0 = unknown), `document`
// is the 0-based document index (-1 = the whole file, e.g. a YAML syntax error).
struct ManifestError {
  std::string file;
  int document = -1;
  int line = 0;
  std::string message;

  // "/x/lb.yaml:12: document 1: missing metadata.name"
  std::string ToString() const;
};

struct ParsedObject {
  ObjectKey key;
  StoredObject stored;
};

struct ParseResult {
  std::vector<ParsedObject> objects;  // in document order
  std::vector<ManifestError> errors;  // structural errors (the file is then "not parsing")
  std::vector<ManifestError> ignored;  // documents of kinds the controller does not know
};

// Parses multi-document YAML `text` read from `file`. Scalars are typed as YAML 1.2's core
// schema does (what kubectl users expect from Kubernetes manifests): plain 8080 → number,
// true/false → bool, null/~/empty → null, anything quoted → string. Empty documents are
// skipped. Every other document must be a mapping with apiVersion, kind and metadata.name;
// metadata.namespace defaults to "default" for namespaced kinds.
ParseResult ParseManifests(std::string_view text, const std::string& file);

// Converts one YAML document's text to JSON (for tests and tools). Throws std::runtime_error
// with the line on a syntax error.
nlohmann::json YamlToJson(std::string_view yaml);

// A watch event, as the Kubernetes API would report it ("ADDED" | "MODIFIED" | "DELETED").
struct WatchEvent {
  std::string type;
  ObjectKey key;
};

// The objects all manifest files contribute, with the last-good rule for files:
// * a file that parses cleanly replaces everything that file contributed;
// * a file with errors keeps the objects of its last clean parse (marked stale, with the
//   reason) — or, if it never parsed cleanly, contributes the documents that did parse;
// * a removed file removes its objects.
// When two files declare the same object, the file that sorts first by path wins and the other
// declaration is reported.
class ManifestSet {
 public:
  // Applies a fresh parse of `file`; returns the watch events it caused (sorted by key) and
  // appends log lines for new problems to `diagnostics`.
  std::vector<WatchEvent> ApplyFile(const std::string& file, ParseResult parsed,
                                    std::vector<Diagnostic>* diagnostics);
  std::vector<WatchEvent> RemoveFile(const std::string& file, std::vector<Diagnostic>* diagnostics = nullptr);

  // Several files at once (a parse for each, or nullopt for a removed file), the store rebuilt
  // once: what ApplyFile/RemoveFile one by one end with, without rebuilding the whole store per
  // file (helper-111: reading 1,500 files took 22 s, quadratic in the files).
  std::vector<WatchEvent> ApplyFiles(std::vector<std::pair<std::string, std::optional<ParseResult>>> files,
                                     std::vector<Diagnostic>* diagnostics);

  const ObjectStore& objects() const { return objects_; }
  std::vector<std::string> files() const;
  // Current problems, file by file (for /debug/status).
  std::vector<ManifestError> errors() const;

 private:
  struct FileState {
    std::vector<ParsedObject> serving;  // what this file contributes now
    std::vector<ManifestError> errors;  // problems of the latest parse
    bool ever_clean = false;
  };
  std::vector<WatchEvent> Rebuild(std::vector<Diagnostic>* diagnostics);
  void Stage(const std::string& file, ParseResult parsed, std::vector<Diagnostic>* diagnostics);

  std::map<std::string, FileState> files_;
  ObjectStore objects_;
  std::set<std::string> duplicates_;  // "file|object|winner" already reported
};

}  // namespace doorman::controller
