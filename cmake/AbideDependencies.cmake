# Dependencies as Debian 12 ships them. cmake/abideConfig.cmake.in finds the
# same ones for consumers of an installed abide.
find_package(Boost 1.74 REQUIRED COMPONENTS context)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET GLOBAL lmdb)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
