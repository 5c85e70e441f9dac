# Builds and runs tests/consumer against this build of clickpipe.
# Inputs: MODE, SOURCE_DIR, BUILD_DIR (the clickpipe build), WORK, GENERATOR, CXX_FLAGS, LINK_FLAGS.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

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
endif()

run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK}/build" -G "${GENERATOR}"
    -DCLICKPIPE_CONSUME=${MODE}
    -DCLICKPIPE_SOURCE_DIR=${SOURCE_DIR}
    "-DCMAKE_PREFIX_PATH=${WORK}/prefix"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}")
run(${CMAKE_COMMAND} --build "${WORK}/build" --target consumer)
run("${WORK}/build/consumer")
if(NOT last_output MATCHES "consumer ok: Running Running")
  message(FATAL_ERROR "unexpected consumer output: ${last_output}")
endif()
message(STATUS "${MODE}: ${last_output}")
