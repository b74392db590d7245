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
