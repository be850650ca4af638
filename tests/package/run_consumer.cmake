# Configures, builds and runs tests/package/consumer against abide, as ctest's
# abide_package_* tests do (see tests/CMakeLists.txt). Fails if any step fails.
#
#   cmake -DMODE=install|subdirectory
#         -DABIDE_SOURCE_DIR=<abide source tree>
#         -DABIDE_BINARY_DIR=<abide build tree>      (install mode: what to install)
#         -DWORK_DIR=<scratch dir, wiped first>
#         [-DCONFIG=Debug] [-DGENERATOR=Ninja] [-DMAKE_PROGRAM=...] [-DCXX_COMPILER=g++]
#         [-DSANITIZE=address,undefined] [-DWERROR=ON]
#         -P tests/package/run_consumer.cmake
#
# install:      cmake --install <ABIDE_BINARY_DIR> --prefix <WORK_DIR>/prefix, check
#               the installed tree, then build the consumer with find_package(abide)
#               and CMAKE_PREFIX_PATH=<WORK_DIR>/prefix.
# subdirectory: build the consumer with add_subdirectory(<ABIDE_SOURCE_DIR>).
cmake_minimum_required(VERSION 3.20)

foreach(var MODE ABIDE_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(install|subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: MODE must be install or subdirectory, not '${MODE}'")
endif()

set(consumer_src "${CMAKE_CURRENT_LIST_DIR}/consumer")
set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")

# Runs a command, echoing it; stops the script with its output if it fails.
function(run_step what)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "[${MODE}] ${what}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc STREQUAL "0")
    message("${out}")
    message(FATAL_ERROR "[${MODE}] ${what} failed (${rc})")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(configure_args -S "${consumer_src}" -B "${consumer_build}")
if(GENERATOR)
  list(APPEND configure_args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(CONFIG)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
if(SANITIZE)
  # An instrumented static libabide needs the sanitizer runtimes at link time.
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE} -fno-omit-frame-pointer"
                             "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()

if(MODE STREQUAL "install")
  if(NOT ABIDE_BINARY_DIR OR NOT EXISTS "${ABIDE_BINARY_DIR}/cmake_install.cmake")
    message(FATAL_ERROR "run_consumer.cmake: ABIDE_BINARY_DIR='${ABIDE_BINARY_DIR}' is not a configured abide build tree")
  endif()
  set(install_args --install "${ABIDE_BINARY_DIR}" --prefix "${prefix}")
  if(CONFIG)
    list(APPEND install_args --config "${CONFIG}")
  endif()
  run_step("install abide" "${CMAKE_COMMAND}" ${install_args})

  # The installed tree: public headers and the package files, nothing private.
  file(GLOB_RECURSE config_files "${prefix}/*/abideConfig.cmake")
  file(GLOB_RECURSE version_files "${prefix}/*/abideConfigVersion.cmake")
  file(GLOB_RECURSE target_files "${prefix}/*/abideTargets.cmake")
  if(NOT config_files OR NOT version_files OR NOT target_files)
    message(FATAL_ERROR "[install] abideConfig.cmake, abideConfigVersion.cmake or abideTargets.cmake not installed under ${prefix}")
  endif()
  if(NOT EXISTS "${prefix}/include/abide/abide.hpp")
    message(FATAL_ERROR "[install] ${prefix}/include/abide/abide.hpp not installed")
  endif()
  file(GLOB_RECURSE headers RELATIVE "${prefix}/include" "${prefix}/include/*")
  set(bad "")
  foreach(h IN LISTS headers)
    if(NOT h MATCHES "^abide/")
      list(APPEND bad "${h} (outside include/abide)")
      continue()
    endif()
    # Installed headers must compile with only the public dependency
    # (nlohmann_json): Boost, LMDB and fmt are private to libabide.
    file(STRINGS "${prefix}/include/${h}" includes REGEX "^[ \t]*#[ \t]*include")
    foreach(line IN LISTS includes)
      if(line MATCHES "[<\"](boost/|lmdb\\.h|fmt/)")
        list(APPEND bad "${h}: ${line}")
      elseif(line MATCHES "<(abide/[^>]+)>")
        if(NOT EXISTS "${prefix}/include/${CMAKE_MATCH_1}")
          list(APPEND bad "${h}: ${line} (not installed)")
        endif()
      elseif(line MATCHES "\"([^\"]+)\"")
        get_filename_component(h_dir "${prefix}/include/${h}" DIRECTORY)
        if(NOT EXISTS "${h_dir}/${CMAKE_MATCH_1}" AND NOT EXISTS "${prefix}/include/${CMAKE_MATCH_1}")
          list(APPEND bad "${h}: ${line} (not installed)")
        endif()
      endif()
    endforeach()
  endforeach()
  if(bad)
    list(JOIN bad "\n  " bad)
    message(FATAL_ERROR "[install] installed headers must not need private headers or dependencies:\n  ${bad}")
  endif()
  list(LENGTH headers n_headers)
  message(STATUS "[install] ${n_headers} installed headers, none needs Boost, LMDB or fmt")

  list(APPEND configure_args -DABIDE_CONSUMER_MODE=package "-DCMAKE_PREFIX_PATH=${prefix}"
                             # only the fresh prefix, never another installed abide
                             -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
else()
  list(APPEND configure_args -DABIDE_CONSUMER_MODE=subdirectory "-DABIDE_SOURCE_DIR=${ABIDE_SOURCE_DIR}")
  if(SANITIZE)
    list(APPEND configure_args "-DABIDE_SANITIZE=${SANITIZE}")
  endif()
  if(WERROR)
    list(APPEND configure_args -DABIDE_WERROR=ON)
  endif()
endif()

run_step("configure consumer" "${CMAKE_COMMAND}" ${configure_args})

if(MODE STREQUAL "install")
  # find_package must have taken abide from the fresh prefix.
  file(STRINGS "${consumer_build}/CMakeCache.txt" abide_dir_line REGEX "^abide_DIR:")
  string(REGEX REPLACE "^abide_DIR:[A-Z]+=" "" abide_dir "${abide_dir_line}")
  file(REAL_PATH "${prefix}" real_prefix)
  if(abide_dir STREQUAL "" OR NOT EXISTS "${abide_dir}")
    message(FATAL_ERROR "[install] find_package(abide) found nothing (abide_DIR='${abide_dir}')")
  endif()
  file(REAL_PATH "${abide_dir}" real_abide_dir)
  string(FIND "${real_abide_dir}/" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "[install] find_package(abide) used ${abide_dir}, not the fresh prefix ${prefix}")
  endif()
  message(STATUS "[install] find_package(abide) used ${abide_dir}")
endif()

set(build_args --build "${consumer_build}" --parallel 2)
if(CONFIG)
  list(APPEND build_args --config "${CONFIG}")
endif()
run_step("build consumer" "${CMAKE_COMMAND}" ${build_args})

set(exe "${consumer_build}/abide_consumer")
if(CONFIG AND NOT EXISTS "${exe}" AND EXISTS "${consumer_build}/${CONFIG}/abide_consumer")
  set(exe "${consumer_build}/${CONFIG}/abide_consumer")  # multi-config generators
endif()
run_step("run consumer" "${exe}")
message("${step_output}")
if(NOT step_output MATCHES "completed with 42")
  message(FATAL_ERROR "[${MODE}] the consumer did not report its result")
endif()
message(STATUS "[${MODE}] OK")
