# Sanitizer builds (docs/testing.md). Included by the top CMakeLists.txt after
# the options; adds the flags to every target of the build (ours and the
# generated protobuf code; Debian's prebuilt libraries stay uninstrumented).
#
#   NTK_SANITIZE=address,undefined   ASan + UBSan, UBSan findings abort
#   NTK_SANITIZE=thread              TSan
#   NTK_FUZZ=ON                      address,undefined plus libFuzzer coverage
#                                    (-fsanitize=fuzzer-no-link); clang only
if(NTK_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "NTK_FUZZ=ON needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14")
  endif()
  if(NTK_SANITIZE STREQUAL "")
    set(NTK_SANITIZE "address,undefined")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(NOT NTK_SANITIZE STREQUAL "")
  message(STATUS "Sanitizers: ${NTK_SANITIZE}")
  add_compile_options(-fsanitize=${NTK_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${NTK_SANITIZE})
  if(NTK_SANITIZE MATCHES "undefined")
    # A UBSan finding fails the test or fuzz run instead of only printing.
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()

# TSan: Debian's absl::Mutex / CondVar / Notification are not instrumented,
# so TSan cannot see their synchronization. tests/sanitizers/tsan_absl_sync.cc
# wraps them (`--wrap` for each symbol on its NTK_TSAN_WRAP lines, read from
# the file so that the list is written once) and tells TSan. Called by the
# top CMakeLists.txt once absl is found; every target created afterwards is
# linked with the wraps and the shim.
macro(ntk_tsan_absl_sync)
  set(_ntk_shim ${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan_absl_sync.cc)
  file(STRINGS ${_ntk_shim} _ntk_wrap_lines REGEX "^NTK_TSAN_WRAP(_VOID)?\\(_Z")
  foreach(_ntk_line IN LISTS _ntk_wrap_lines)
    string(REGEX MATCH "_Z[A-Za-z0-9_]+" _ntk_sym "${_ntk_line}")
    add_link_options("LINKER:--wrap=${_ntk_sym}")
  endforeach()
  add_library(ntk_tsan_absl_sync SHARED ${_ntk_shim})
  target_link_libraries(ntk_tsan_absl_sync PRIVATE absl::synchronization absl::time)
  link_libraries(ntk_tsan_absl_sync)
endmacro()
