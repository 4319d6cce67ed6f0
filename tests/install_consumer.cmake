# Installs the build tree into a scratch prefix, then builds and runs
# tests/consumer twice: through find_package(clora) and through pkg-config.
#   cmake -D BUILD_DIR=... -D SOURCE_DIR=... -D WORK_DIR=... [-D CONSUMER_FLAGS=...]
#         -P install_consumer.cmake
# CONSUMER_FLAGS: compiler flags for the application (a sanitized build's).

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${result}): ${command}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# CMake package
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/cmake-build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS=${CONSUMER_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run(${WORK_DIR}/cmake-build/consumer)

# pkg-config
file(GLOB_RECURSE pc_files ${prefix}/*/clora.pc)
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
execute_process(COMMAND pkg-config --cflags --libs clora OUTPUT_VARIABLE flags RESULT_VARIABLE result
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "pkg-config cannot resolve clora from ${pc_dir}")
endif()
separate_arguments(flags UNIX_COMMAND "${CONSUMER_FLAGS} ${flags}")
run(cc -std=c11 ${SOURCE_DIR}/tests/consumer/main.c -o ${WORK_DIR}/pkg-consumer ${flags} -lm)
get_filename_component(lib_dir ${pc_dir} DIRECTORY)
set(ENV{LD_LIBRARY_PATH} ${lib_dir})
run(${WORK_DIR}/pkg-consumer)
