// tests/testing/temp_dir.h: temporary directories and whole-file I/O for
// tests.
//
//   TempDir dir;                          // removed with its contents
//   WriteFile(dir.File("token"), "s3cret\n");
//
// Thread safety: a TempDir is used from one thread; the free functions are
// thread-safe.
#ifndef NTK_TESTS_TESTING_TEMP_DIR_H_
#define NTK_TESTS_TESTING_TEMP_DIR_H_

#include <string>
#include <vector>

namespace ntk::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by
// the destructor. Adds a test failure when it cannot be created.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory (not recursive), sorted.
  std::vector<std::string> List() const;

 private:
  std::string path_;
};

// The contents of a file ("" if it cannot be read).
std::string ReadFileOrEmpty(const std::string& path);

// Writes `text` to `path` (replacing it); false on failure.
bool WriteFile(const std::string& path, const std::string& text);

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_TEMP_DIR_H_
