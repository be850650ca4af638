# install + export so that another project can find_package(abide).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS abide EXPORT abideTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  # The top-level $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}> is evaluated
  # before GNUInstallDirs is included, so the include dir is given here.
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/abide DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT abideTargets NAMESPACE abide:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/abide)
# abideConfig.cmake looks for the private dependencies only when consumers link
# them (a static libabide carries them as $<LINK_ONLY:...>).
get_target_property(ABIDE_LIBRARY_TYPE abide TYPE)
configure_package_config_file(cmake/abideConfig.cmake.in
  ${PROJECT_BINARY_DIR}/abideConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/abide)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/abideConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/abideConfig.cmake ${PROJECT_BINARY_DIR}/abideConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/abide)
