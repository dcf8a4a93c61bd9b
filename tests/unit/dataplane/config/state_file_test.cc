// --state-dir file: round trip, a damaged file refused (checksum), a file of the previous format.
#include "dataplane/config/state_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/doorman-state-test.XXXXXX";
  return mkdtemp(tmpl);
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

doorman::v1::StateUpdate Update() {
  doorman::v1::StateUpdate u;
  u.set_version(42);
  auto* l = u.mutable_snapshot()->add_listeners();
  l->set_name("http-20080");
  l->set_port(20080);
  return u;
}

TEST(StateFile, RoundTripAndAFlippedByteIsRefused) {
  const std::string dir = TempDir();
  std::string error;
  ASSERT_TRUE(SaveState(dir, Update(), &error)) << error;
  auto loaded = LoadState(dir, &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->version(), 42u);
  EXPECT_EQ(loaded->snapshot().listeners(0).port(), 20080u);

  const std::string path = dir + "/" + kStateFileName;
  const std::string good = Read(path);
  for (std::size_t i = good.find('\n') + 1; i < good.size(); ++i) {  // every payload byte
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Write(path, bad);
    error.clear();
    EXPECT_FALSE(LoadState(dir, &error)) << "byte " << i;
    EXPECT_NE(error.find("damaged"), std::string::npos) << error;
  }
  // A file written before the checksum header (the bare StateUpdate) still loads.
  std::string legacy;
  ASSERT_TRUE(Update().SerializeToString(&legacy));
  Write(path, legacy);
  loaded = LoadState(dir, &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->version(), 42u);
  // An emptied file, or a headerless one that holds no version, is refused, not served as an
  // empty state (helper-101); so is a checksummed one without a version.
  doorman::v1::StateUpdate unversioned = Update();
  unversioned.set_version(0);
  std::string unversioned_bytes;
  ASSERT_TRUE(unversioned.SerializeToString(&unversioned_bytes));
  for (const std::string& bytes : {std::string(), unversioned_bytes}) {
    Write(path, bytes);
    error.clear();
    EXPECT_FALSE(LoadState(dir, &error)) << bytes.size();
    EXPECT_NE(error.find("is not a valid routing state ("), std::string::npos) << error;
  }
  EXPECT_NE(error.find("it has no version"), std::string::npos) << error;
  error.clear();
  ASSERT_TRUE(SaveState(dir, unversioned, &error)) << error;
  EXPECT_FALSE(LoadState(dir, &error));
  unlink(path.c_str());
  rmdir(dir.c_str());
}

// The directory may be shared (helper-137): a temp file someone planted is replaced, never written
// through (a symlink's target is untouched), the saved file is 0600, and a state file another user
// could have written is not served.
TEST(StateFile, ASharedDirectoryCannotBeUsedToReadTheKeysOrPlantAState) {
  const std::string dir = TempDir();
  const std::string path = dir + "/" + kStateFileName;
  const std::string tmp = path + ".tmp";
  const std::string target = dir + "/target";
  Write(target, "untouched");
  ASSERT_EQ(symlink(target.c_str(), tmp.c_str()), 0);
  std::string error;
  ASSERT_TRUE(SaveState(dir, Update(), &error)) << error;
  EXPECT_EQ(Read(target), "untouched");
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_TRUE(LoadState(dir, &error)) << error;
  // A pre-created world-readable temp file: replaced, so the result is 0600 all the same.
  Write(tmp, "");
  ASSERT_EQ(chmod(tmp.c_str(), 0644), 0);
  ASSERT_TRUE(SaveState(dir, Update(), &error)) << error;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A state file others may write is not loaded; nor is a symlink to one.
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  error.clear();
  EXPECT_FALSE(LoadState(dir, &error));
  EXPECT_NE(error.find("is not loaded"), std::string::npos) << error;
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  ASSERT_TRUE(LoadState(dir, &error)) << error;
  if (geteuid() == 0) {  // CI runs as root: a file of another user's
    ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
    error.clear();
    EXPECT_FALSE(LoadState(dir, &error));
    EXPECT_NE(error.find("is not loaded"), std::string::npos) << error;
  }
  const std::string moved = dir + "/real";
  ASSERT_EQ(rename(path.c_str(), moved.c_str()), 0);
  ASSERT_EQ(chown(moved.c_str(), geteuid(), getegid()), 0);
  ASSERT_EQ(symlink(moved.c_str(), path.c_str()), 0);
  error.clear();
  EXPECT_FALSE(LoadState(dir, &error));
  EXPECT_FALSE(error.empty());
  // A directory every user may write, without the sticky bit, is said.
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  std::string warning;
  EXPECT_TRUE(EnsureStateDir(dir, &error, &warning)) << error;
  EXPECT_NE(warning.find("writable by every user (mode 0777)"), std::string::npos) << warning;
  ASSERT_EQ(chmod(dir.c_str(), 01777), 0);
  warning.clear();
  EXPECT_TRUE(EnsureStateDir(dir, &error, &warning)) << error;
  EXPECT_EQ(warning, "");
  for (const std::string& f : {path, moved, target}) unlink(f.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace doorman::dataplane
