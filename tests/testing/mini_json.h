// tests/testing/mini_json.h: a minimal JSON reader (objects, arrays,
// numbers, strings, literals) for tests that check a tool's JSON output
// field by field (ntkctl_test). Header-only; not a general parser.
//
// Thread safety: a JsonParser is used from one thread.
#ifndef NTK_TESTS_TESTING_MINI_JSON_H_
#define NTK_TESTS_TESTING_MINI_JSON_H_

#include <cctype>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace ntk::testing {

struct Json {
  enum Type { kNull, kBool, kNumber, kString, kArray, kObject } type = kNull;
  bool b = false;
  double number = 0;
  std::string str;
  std::vector<Json> array;
  std::map<std::string, Json> object;
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  // Parses the whole text as one value; false on any syntax error.
  bool Parse(Json* out) {
    if (!Value(out)) return false;
    Ws();
    return i_ == s_.size();
  }

 private:
  void Ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool Lit(const char* lit) {
    const std::string l(lit);
    if (s_.compare(i_, l.size(), l) != 0) return false;
    i_ += l.size();
    return true;
  }
  bool String(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        if (++i_ >= s_.size()) return false;
        const char e = s_[i_];
        if (e == 'u') {
          if (i_ + 4 >= s_.size()) return false;
          out->push_back('?');
          i_ += 4;
        } else {
          out->push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
        }
        ++i_;
      } else {
        out->push_back(s_[i_++]);
      }
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool Value(Json* v) {
    Ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') {
      v->type = Json::kObject;
      ++i_;
      Ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      while (true) {
        Ws();
        std::string key;
        if (!String(&key)) return false;
        Ws();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        if (!Value(&v->object[key])) return false;
        Ws();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
        return false;
      }
    }
    if (c == '[') {
      v->type = Json::kArray;
      ++i_;
      Ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      while (true) {
        v->array.emplace_back();
        if (!Value(&v->array.back())) return false;
        Ws();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
        return false;
      }
    }
    if (c == '"') {
      v->type = Json::kString;
      return String(&v->str);
    }
    if (Lit("true")) { v->type = Json::kBool; v->b = true; return true; }
    if (Lit("false")) { v->type = Json::kBool; return true; }
    if (Lit("null")) { v->type = Json::kNull; return true; }
    const char* begin = s_.c_str() + i_;
    char* end = nullptr;
    v->number = std::strtod(begin, &end);
    if (end == begin) return false;
    v->type = Json::kNumber;
    i_ += static_cast<size_t>(end - begin);
    return true;
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_MINI_JSON_H_
