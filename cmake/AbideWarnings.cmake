# Warnings and sanitizers for abide's own targets only: never PUBLIC, so
# nothing leaks into consumers' builds.
function(abide_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
  # GCC 12 (Debian 12's compiler) reports -Wrestrict inside libstdc++'s
  # std::string when optimising: a memcpy of "9223372036854775810 or more
  # bytes" that no path can reach (GCC bugs 105329, 105651). Silenced for that
  # compiler only; the Debug build CI checks with -Werror never showed it.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(ABIDE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  abide_set_sanitizers(${target})
endfunction()

function(abide_set_sanitizers target)
  if(ABIDE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${ABIDE_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${ABIDE_SANITIZE})
  endif()
endfunction()
