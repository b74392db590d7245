#include "tools/ntkctl/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ntkctl {
namespace {

uint32_t ReadBigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

absl::Status TooLarge(absl::string_view name, uint64_t max_bytes) {
  return absl::ResourceExhaustedError(
      absl::StrCat(name, ": more than ", max_bytes, " bytes (the IDX size limit)"));
}

}  // namespace

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, absl::string_view name,
                                  const IdxOptions& options) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() > options.max_bytes) return TooLarge(name, options.max_bytes);
  if (bytes.size() < 4) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": truncated: no 4-byte magic"));
  }
  const uint32_t magic = ReadBigEndian32(p);
  if (magic != kIdxLabelsMagic && magic != kIdxImagesMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: magic 0x%08x is neither 0x%08x (labels) nor 0x%08x (images)", name, magic,
        kIdxLabelsMagic, kIdxImagesMagic));
  }
  const size_t ndims = magic & 0xff;
  const size_t header = 4 + 4 * ndims;
  if (bytes.size() < header) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated: %d bytes, the header of %d dimensions needs %d", name, bytes.size(),
        ndims, header));
  }
  IdxArray out;
  uint64_t count = 1;
  for (size_t k = 0; k < ndims; ++k) {
    const uint32_t d = ReadBigEndian32(p + 4 + 4 * k);
    if (d == 0) return absl::InvalidArgumentError(absl::StrFormat("%s: dimension %d is 0", name, k));
    // count <= max_bytes < 2^64 / 2^32 before each step, so no overflow.
    count *= d;
    if (count > options.max_bytes) return TooLarge(name, options.max_bytes);
    out.dims.push_back(d);
  }
  const uint64_t have = bytes.size() - header;
  if (have != count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s: the dimensions need %d data bytes, the file has %d", name,
        have < count ? "truncated" : "trailing bytes", count, have));
  }
  out.data.assign(p + header, p + header + count);
  return out;
}

absl::StatusOr<std::string> Gunzip(absl::string_view bytes, absl::string_view name,
                                   uint64_t max_bytes) {
  z_stream z{};
  // 16 + MAX_WBITS: gzip wrapper only.
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat(name, ": zlib inflateInit2 failed"));
  }
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&z};
  std::string out;
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t consumed = 0;
  char buf[1 << 16];
  while (true) {
    const size_t chunk = std::min<size_t>(bytes.size() - consumed,
                                          std::numeric_limits<uInt>::max());
    z.next_in = const_cast<unsigned char*>(in + consumed);
    z.avail_in = static_cast<uInt>(chunk);
    z.next_out = reinterpret_cast<unsigned char*>(buf);
    z.avail_out = sizeof(buf);
    const int rc = inflate(&z, Z_NO_FLUSH);
    consumed += chunk - z.avail_in;
    const size_t produced = sizeof(buf) - z.avail_out;
    if (out.size() + produced > max_bytes) return TooLarge(name, max_bytes);
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      if (consumed == bytes.size()) return out;
      inflateReset(&z);  // another gzip member follows
      continue;
    }
    if (rc != Z_OK && !(rc == Z_BUF_ERROR && produced > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": bad gzip data at compressed byte ", consumed, ": ",
          z.msg != nullptr ? z.msg : (rc == Z_BUF_ERROR ? "truncated" : "inflate failed")));
    }
    if (produced == 0 && z.avail_in == 0 && consumed == bytes.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": truncated gzip data (", bytes.size(), " bytes)"));
    }
  }
}

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, const IdxOptions& options) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  if (size < 0 || static_cast<uint64_t>(size) > options.max_bytes) {
    return TooLarge(path, options.max_bytes);
  }
  file.seekg(0, std::ios::beg);
  std::ostringstream contents;
  contents << file.rdbuf();
  const std::string bytes = contents.str();
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
      static_cast<unsigned char>(bytes[1]) == 0x8b) {
    absl::StatusOr<std::string> raw = Gunzip(bytes, path, options.max_bytes);
    if (!raw.ok()) return raw.status();
    return ParseIdx(*raw, path, options);
  }
  return ParseIdx(bytes, path, options);
}

absl::StatusOr<Eigen::MatrixXd> IdxImageRows(const IdxArray& images, int64_t begin,
                                             int64_t end, double divisor) {
  if (images.dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX images: %d dimensions, want 3 (N, rows, cols)", images.dims.size()));
  }
  const Eigen::Index d = Eigen::Index{images.dims[1]} * images.dims[2];
  Eigen::MatrixXd x(end - begin, d);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const uint8_t* row = images.data.data() + (begin + i) * d;
    for (Eigen::Index j = 0; j < d; ++j) x(i, j) = row[j] / divisor;
  }
  return x;
}

absl::StatusOr<Eigen::MatrixXd> IdxToFeatures(const IdxArray& images) {
  const int64_t n = images.dims.empty() ? 0 : images.dims[0];
  return IdxImageRows(images, 0, n, 255.0);
}

absl::StatusOr<bool> IsIdxFile(const std::string& path) {
  const absl::string_view base = absl::string_view(path).substr(path.rfind('/') + 1);
  if (absl::StrContains(base, "-ubyte") || absl::EndsWith(base, ".idx") ||
      absl::EndsWith(base, ".idx.gz")) {
    return true;
  }
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");  // reads gzip and plain files alike
  if (f == nullptr) {
    const int err = errno;
    return absl::NotFoundError(absl::StrCat(
        path, ": cannot open: ", err != 0 ? std::strerror(err) : "gzopen failed"));
  }
  unsigned char head[2] = {1, 1};
  const int got = gzread(f, head, sizeof(head));
  gzclose(f);
  return got == 2 && head[0] == 0 && head[1] == 0;
}

absl::StatusOr<CsvData> ReadDataIdx(const std::string& images_path,
                                    const std::string& labels_path, const RowRange& rows,
                                    int expected_features, const IdxOptions& options) {
  absl::StatusOr<IdxArray> images = ReadIdxFile(images_path, options);
  if (!images.ok()) return images.status();
  if (images->dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: an IDX file of %d dimension(s); --data needs images (3: N, rows, cols)",
        images_path, images->dims.size()));
  }
  const int64_t n = images->dims[0];
  const int64_t d = int64_t{images->dims[1]} * images->dims[2];
  if (expected_features >= 0 && d != expected_features) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: images of %d x %d = %d pixels, the model has %d features", images_path,
        images->dims[1], images->dims[2], d, expected_features));
  }
  CsvData out;
  if (!labels_path.empty()) {
    absl::StatusOr<IdxArray> labels = ReadIdxFile(labels_path, options);
    if (!labels.ok()) return labels.status();
    if (labels->dims.size() != 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: an IDX file of %d dimension(s); --labels needs labels (1: N)", labels_path,
          labels->dims.size()));
    }
    if (labels->dims[0] != n) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s has %d images but %s has %d labels", images_path, n,
                          labels_path, labels->dims[0]));
    }
    out.labels.assign(labels->data.begin(), labels->data.end());
  }
  if (absl::Status s = CheckRowRange(images_path, rows, n); !s.ok()) return s;
  const int64_t begin = rows.begin;
  const int64_t end = rows.end < 0 ? n : rows.end;
  absl::StatusOr<Eigen::MatrixXd> x = IdxImageRows(*images, begin, end, 1.0);
  if (!x.ok()) return x.status();
  out.features = *std::move(x);
  if (!out.labels.empty()) {
    out.labels = std::vector<int>(out.labels.begin() + begin, out.labels.begin() + end);
  }
  for (int64_t i = begin; i < end; ++i) out.row_index.push_back(i);
  return out;
}

absl::StatusOr<std::vector<int>> IdxToLabels(const IdxArray& labels) {
  if (labels.dims.size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX labels: %d dimensions, want 1 (N)", labels.dims.size()));
  }
  return std::vector<int>(labels.data.begin(), labels.data.end());
}

}  // namespace ntkctl
