#include "server/reflection.h"

#include <unordered_set>
#include <utility>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include "server/status.h"

namespace ntk::server {
namespace {

namespace rpb = ::grpc::reflection::v1alpha;
using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;

constexpr char kServiceName[] = "grpc.reflection.v1alpha.ServerReflection";

void SetError(grpc::StatusCode code, const std::string& message,
              rpb::ServerReflectionResponse* response) {
  rpb::ErrorResponse* e = response->mutable_error_response();
  e->set_error_code(static_cast<int32_t>(code));
  e->set_error_message(message);
}

// `file` and, depth first, every file it imports, each once.
void AddFileAndDependencies(const FileDescriptor* file, std::unordered_set<std::string>* seen,
                            rpb::FileDescriptorResponse* out) {
  if (!seen->insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFileAndDependencies(file->dependency(i), seen, out);
  }
}

// The file and its dependencies, or NOT_FOUND with `not_found` when file is null.
void SetFileOrNotFound(const FileDescriptor* file, const char* not_found,
                       rpb::ServerReflectionResponse* response) {
  if (file == nullptr) {
    SetError(grpc::StatusCode::NOT_FOUND, not_found, response);
    return;
  }
  std::unordered_set<std::string> seen;
  AddFileAndDependencies(file, &seen, response->mutable_file_descriptor_response());
}

// One stream: answers each request as it arrives, in order.
class ReflectionReactor final
    : public grpc::ServerBidiReactor<rpb::ServerReflectionRequest, rpb::ServerReflectionResponse> {
 public:
  ReflectionReactor(const ReflectionService* service, const TokenAuth* auth,
                    InflightCalls* inflight, grpc::CallbackServerContext* ctx)
      : service_(service), inflight_(inflight) {
    inflight_->Enter();  // left in OnDone
    if (absl::Status s = auth->Check(*ctx); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or the call was cancelled)
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    service_->Answer(request_, &response_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(ToGrpcStatus(absl::UnknownError("reflection: write failed")));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    InflightCalls* const inflight = inflight_;
    delete this;
    inflight->Exit();
  }

 private:
  const ReflectionService* const service_;
  InflightCalls* const inflight_;
  rpb::ServerReflectionRequest request_;
  rpb::ServerReflectionResponse response_;
};

}  // namespace

ReflectionService::ReflectionService(const TokenAuth* auth, InflightCalls* inflight,
                                     std::vector<std::string> services)
    : auth_(auth), inflight_(inflight), services_([&] {
        services.emplace_back(kServiceName);
        return std::move(services);
      }()) {}

grpc::ServerBidiReactor<rpb::ServerReflectionRequest, rpb::ServerReflectionResponse>*
ReflectionService::ServerReflectionInfo(grpc::CallbackServerContext* context) {
  return new ReflectionReactor(this, auth_, inflight_, context);
}

void ReflectionService::Answer(const rpb::ServerReflectionRequest& request,
                               rpb::ServerReflectionResponse* response) const {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  response->set_valid_host(request.host());
  *response->mutable_original_request() = request;
  switch (request.message_request_case()) {
    case rpb::ServerReflectionRequest::kFileByFilename:
      SetFileOrNotFound(pool->FindFileByName(request.file_by_filename()), "File not found.",
                        response);
      return;
    case rpb::ServerReflectionRequest::kFileContainingSymbol:
      SetFileOrNotFound(pool->FindFileContainingSymbol(request.file_containing_symbol()),
                        "Symbol not found.", response);
      return;
    case rpb::ServerReflectionRequest::kFileContainingExtension: {
      const rpb::ExtensionRequest& ext = request.file_containing_extension();
      const Descriptor* type = pool->FindMessageTypeByName(ext.containing_type());
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND, "Type not found.", response);
        return;
      }
      const FieldDescriptor* field = pool->FindExtensionByNumber(type, ext.extension_number());
      SetFileOrNotFound(field == nullptr ? nullptr : field->file(), "Extension not found.",
                        response);
      return;
    }
    case rpb::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const Descriptor* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND, "Type not found.", response);
        return;
      }
      std::vector<const FieldDescriptor*> extensions;
      pool->FindAllExtensions(type, &extensions);
      rpb::ExtensionNumberResponse* out = response->mutable_all_extension_numbers_response();
      out->set_base_type_name(type->full_name());
      for (const FieldDescriptor* f : extensions) out->add_extension_number(f->number());
      return;
    }
    case rpb::ServerReflectionRequest::kListServices: {
      rpb::ListServiceResponse* out = response->mutable_list_services_response();
      for (const std::string& name : services_) out->add_service()->set_name(name);
      return;
    }
    default:
      SetError(grpc::StatusCode::UNIMPLEMENTED, "The request is not implemented.", response);
      return;
  }
}

}  // namespace ntk::server
