# Builds and runs tests/consumer against this build of clickpipe.
# Inputs: MODE, VARIANT, SOURCE_DIR, BUILD_DIR (the clickpipe build), WORK, GENERATOR, CXX_FLAGS,
# LINK_FLAGS.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
if(NOT VARIANT)
  set(VARIANT full)
endif()

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK}/prefix")
  if(NOT EXISTS "${WORK}/prefix/lib/cmake/clickpipe/clickpipe-config-version.cmake")
    message(FATAL_ERROR "the install has no package version file")
  endif()
  if(VARIANT STREQUAL "full")
    # The command is installed and runs from the prefix.
    run("${WORK}/prefix/bin/clickpipe" --version)
    if(NOT last_output MATCHES "clickpipe [0-9]+\\.[0-9]+\\.[0-9]+")
      message(FATAL_ERROR "installed clickpipe --version printed: ${last_output}")
    endif()
  endif()
endif()

set(hidden "")
if(VARIANT STREQUAL "lifecycle")
  # The model alone must be found without any of the runtime's dependencies.
  foreach(dep fmt spdlog nlohmann_json Threads)
    list(APPEND hidden -DCMAKE_DISABLE_FIND_PACKAGE_${dep}=ON)
  endforeach()
elseif(VARIANT STREQUAL "missing_dependency")
  set(hidden -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON)
endif()

# Flags (the sanitizers) only where the consumer links this build's installed libraries; a build
# from source needs none and is faster without them.
if(MODE STREQUAL "find_package")
  set(flags "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}")
else()
  set(flags "")
endif()

set(configure ${CMAKE_COMMAND} ${hidden} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK}/build" -G "${GENERATOR}"
    -DCLICKPIPE_CONSUME=${MODE}
    -DCLICKPIPE_VARIANT=${VARIANT}
    -DCLICKPIPE_SOURCE_DIR=${SOURCE_DIR}
    "-DCMAKE_PREFIX_PATH=${WORK}/prefix"
    ${flags})

if(VARIANT STREQUAL "bad_component" OR VARIANT STREQUAL "missing_dependency")
  if(VARIANT STREQUAL "bad_component")
    set(named "no installed component no_such_component")
  else()
    set(named "component postgres needs PostgreSQL")
  endif()
  execute_process(COMMAND ${configure} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "${named}")
    message(FATAL_ERROR "not refused with '${named}' (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${MODE}/${VARIANT}: refused as it should be")
  return()
endif()

run(${configure})
run(${CMAKE_COMMAND} --build "${WORK}/build" --target consumer)
run("${WORK}/build/consumer")
if(VARIANT STREQUAL "lifecycle")
  set(expected "lifecycle ok: Setup refused [0-9]+ rows")
else()
  set(expected "consumer ok: Running Running")
endif()
if(NOT last_output MATCHES "${expected}")
  message(FATAL_ERROR "unexpected consumer output: ${last_output}")
endif()
message(STATUS "${MODE}/${VARIANT}: ${last_output}")
