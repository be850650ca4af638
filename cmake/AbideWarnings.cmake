# Warnings and sanitizers for abide's own targets only: never PUBLIC, so
# nothing leaks into consumers' builds.
function(abide_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
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
