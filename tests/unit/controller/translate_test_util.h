// Shared helpers of the translator's table-driven tests: manifests in, snapshot/statuses out.
#pragma once

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "controller/source/manifest.h"
#include "controller/translate/translate.h"

namespace doorman::controller::testing {

namespace v1 = doorman::v1;

inline ObjectStore Store(const std::string& text, const std::string& path = "/m/test.yaml") {
  ManifestSet set;
  auto parsed = ParseManifests(text, path);
  EXPECT_TRUE(parsed.errors.empty()) << path << ": " << parsed.errors[0].ToString();
  set.ApplyFile(path, std::move(parsed), nullptr);
  return set.objects();
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline const ObjectStatus* StatusOf(const TranslateResult& r, const std::string& kind, const std::string& name) {
  for (const auto& st : r.statuses) {
    if (st.key.kind == kind && st.key.name == name) return &st;
  }
  return nullptr;
}

inline const v1::Listener* ListenerNamed(const v1::Snapshot& s, const std::string& name) {
  for (const auto& l : s.listeners()) {
    if (l.name() == name) return &l;
  }
  return nullptr;
}

inline const v1::Route* RouteNamed(const v1::Snapshot& s, const std::string& name) {
  for (const auto& r : s.routes()) {
    if (r.name() == name) return &r;
  }
  return nullptr;
}

inline const v1::BackendSet* SetNamed(const v1::Snapshot& s, const std::string& name) {
  for (const auto& b : s.backend_sets()) {
    if (b.name() == name) return &b;
  }
  return nullptr;
}

// Statuses as comment lines, then the snapshot: the golden files are the spec, read by eye.
inline std::string GoldenText(const TranslateResult& r) {
  std::string out = "# Statuses (Accepted/reason: message; warnings indented):\n";
  for (const auto& st : r.statuses) {
    out += "#   " + st.key.ToString() + ": " + st.reason + (st.accepted ? "" : ": " + st.message) + "\n";
    for (const auto& w : st.warnings) out += "#     " + w.reason + " " + w.field + ": " + w.message + "\n";
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(r.snapshot, &text);
  return out + text;
}

}  // namespace doorman::controller::testing
