// make_seeds: writes the committed seed corpora fuzz/corpus/<target>/ (run
// by hand after a format change: `build-fuzz/fuzz/make_seeds fuzz/corpus`).
// Seeds are small valid inputs of each kind plus damaged variants, so the
// fuzzers start from deep inside each parser.
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/model/serialize.h"
#include "fuzz/small_models.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "tools/ntkctl/idx.h"

namespace {

std::string g_root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = g_root + "/" + target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

std::string Gzip(const std::string& raw) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void SetCrc(std::string* b) {
  const uint32_t crc = ntk::Crc32c(b->data(), b->size() - 4);
  for (int i = 0; i < 4; ++i) (*b)[b->size() - 4 + i] = static_cast<char>(crc >> (8 * i));
}

void ModelSeeds() {
  for (int k = 0; k < ntk::fuzz::kNumSmallModels; ++k) {
    const std::string m = ntk::fuzz::SmallModel(k).Serialize();
    const std::string tag = "regime" + std::to_string(k);
    Write("model", tag, m);
    Write("model", tag + "-half", m.substr(0, m.size() / 2));
    if (k > 0) continue;
    Write("model", "header-only", m.substr(0, ntk::kModelHeaderBytes));
    Write("model", "minus-one-byte", m.substr(0, m.size() - 1));
    std::string flipped = m;
    flipped[m.size() / 2] ^= 0x10;
    Write("model", "bad-crc", flipped);
    std::string v2 = m;
    v2[8] = 2;  // a newer format version, CRC valid: UNIMPLEMENTED
    SetCrc(&v2);
    Write("model", "version2", v2);
  }
}

void SetMatrix(int rows, int cols, double base, ntk::v1::Matrix* m) {
  m->set_rows(rows);
  m->set_cols(cols);
  for (int i = 0; i < rows * cols; ++i) m->add_values(base + 0.25 * (i % 7) - 0.5 * (i % 3));
}

std::vector<ntk::v1::FitRequest> FitRequests() {
  std::vector<ntk::v1::FitRequest> out(4);
  for (size_t k = 0; k < out.size(); ++k) {
    ntk::v1::FitRequest& r = out[k];
    r.set_model_id("seed-" + std::to_string(k));
    SetMatrix(6, 2, static_cast<double>(k), r.mutable_features());
    if (k == 2) {
      SetMatrix(6, 3, 0, r.mutable_targets());
      for (int i = 0; i < 18; ++i) r.mutable_targets()->set_values(i, i % 3 == i / 3 % 3 ? 0.8 : 0.1);
      r.mutable_spec()->mutable_training()->set_loss(ntk::v1::SQUARED);
    } else {
      for (int i = 0; i < 6; ++i) r.add_labels(i % 3);
    }
    if (k == 1) r.mutable_spec()->mutable_training()->set_regularization(0.5);
    if (k == 3) {
      r.mutable_spec()->mutable_kernel()->set_activation(ntk::v1::ERF);
      r.mutable_spec()->mutable_kernel()->set_depth(3);
      r.mutable_spec()->mutable_kernel()->set_bias_variance(0.1);
      r.mutable_spec()->mutable_preprocessing()->set_standardize(true);
      r.mutable_spec()->mutable_preprocessing()->set_normalize_rows(true);
      r.mutable_spec()->set_num_classes(3);
      for (const char* n : {"x", "y", "z"}) r.mutable_spec()->add_class_names(n);
    }
  }
  return out;
}

// request_fuzzer's input: a selector byte, then the message.
std::string Selected(int selector, const google::protobuf::Message& m) {
  return std::string(1, static_cast<char>(selector)) + m.SerializeAsString();
}

void RequestSeeds() {
  const std::vector<ntk::v1::FitRequest> fits = FitRequests();
  for (size_t k = 0; k < fits.size(); ++k) {
    Write("fit", "fit" + std::to_string(k), fits[k].SerializeAsString());
    Write("request", "fit" + std::to_string(k), Selected(0, fits[k]));
  }
  for (int model = 0; model < ntk::fuzz::kNumSmallModels; ++model) {
    const int base = model << 4;
    ntk::v1::PredictRequest p;
    p.set_model_id("m");
    SetMatrix(2, 3, 0.5, p.mutable_features());
    Write("request", "predict" + std::to_string(model), Selected(base + 1, p));
    for (int method = 0; method <= 4; ++method) {
      ntk::v1::PredictDistributionRequest d;
      d.set_model_id("m");
      SetMatrix(1, 3, -0.5, d.mutable_features());
      d.set_method(static_cast<ntk::v1::DistributionMethod>(method));
      d.set_num_samples(8);
      d.set_seed(7);
      Write("request", "pd" + std::to_string(model) + std::to_string(method),
            Selected(base + 2, d));
    }
  }
  ntk::v1::GetModelRequest g;
  g.set_model_id("model-1.v2_x");
  Write("request", "get", Selected(3, g));
  ntk::v1::DeleteModelRequest del;
  del.set_model_id("../etc");
  Write("request", "delete-bad-id", Selected(4, del));
  Write("request", "list", "\x05");
}

void CsvSeeds() {
  // First byte: the options (csv_fuzzer.cc): bit 0 header, bits 1-2 label
  // column, bits 3-5 expected features + 1, bit 6 row range from line 1.
  const std::string table = "1.5,2,0\n-3e2, 4 ,1\n\n5,6e-3,2\r\n";
  Write("csv", "labels-last", std::string(1, 1 << 1) + table);
  Write("csv", "labels-first-header", std::string(1, 1 | (2 << 1)) + "a,b,c\n" + table);
  Write("csv", "auto-2-features", std::string(1, (3 << 3)) + table);
  Write("csv", "row-range", std::string(1, 0x40 | 1) + "1:3\n" + table + table);
  Write("csv", "gzip", std::string(1, 1 << 1) + Gzip(table));
  Write("csv", "ragged", std::string(1, 0) + "1,2,3\n4,5\n");
  Write("csv", "nan-inf", std::string(1, 3 << 1) + "nan,inf\n-inf,1e400\n");
}

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

void IdxSeeds() {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  absl::StatusOr<ntkctl::IdxArray> images = ntkctl::ReadIdxFile(dir + "t10k-images-idx3-ubyte.gz");
  absl::StatusOr<ntkctl::IdxArray> labels = ntkctl::ReadIdxFile(dir + "t10k-labels-idx1-ubyte.gz");
  if (!images.ok() || !labels.ok()) {
    std::fprintf(stderr, "make_seeds: Fashion-MNIST not found; IDX seeds skipped\n");
    return;
  }
  // The first 2 real images (28 x 28) and 8 real labels.
  std::string img = BigEndian(ntkctl::kIdxImagesMagic) + BigEndian(2) + BigEndian(28) + BigEndian(28);
  img.append(images->data.begin(), images->data.begin() + 2 * 28 * 28);
  std::string lab = BigEndian(ntkctl::kIdxLabelsMagic) + BigEndian(8);
  lab.append(labels->data.begin(), labels->data.begin() + 8);
  Write("idx", "images2", img);
  Write("idx", "labels8", lab);
  Write("idx", "images2.gz", Gzip(img));
  Write("idx", "labels8.gz", Gzip(lab));
  Write("idx", "images-truncated", img.substr(0, img.size() - 5));
  Write("idx", "labels-gz-truncated", Gzip(lab).substr(0, 20));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus root, e.g. fuzz/corpus>\n");
    return 2;
  }
  g_root = argv[1];
  ModelSeeds();
  RequestSeeds();
  CsvSeeds();
  IdxSeeds();
  return 0;
}
