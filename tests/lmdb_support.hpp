// Test support that writes database files with the LMDB C API directly, as
// another program (or a damaged disk) would.
#pragma once

#include <catch2/catch.hpp>

#include <lmdb.h>

#include <filesystem>
#include <functional>
#include <string>

namespace abide::test {

/// An LMDB file that belongs to someone else: one key in the main database,
/// no abide tables. LMDB's own lock file is removed afterwards.
inline void write_foreign_lmdb(const std::filesystem::path& path) {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_set_mapsize(env, std::size_t{1} << 20) == 0);
    REQUIRE(mdb_env_open(env, path.c_str(), MDB_NOSUBDIR, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi dbi = 0;
    REQUIRE(mdb_dbi_open(txn, nullptr, 0, &dbi) == 0);
    std::string key = "customer:17", value = "someone else's data";
    MDB_val k{key.size(), key.data()}, v{value.size(), value.data()};
    REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    std::filesystem::remove(path.string() + "-lock");
}

/// Changes one abide table with the LMDB C API, as a damaged disk or a
/// newer abide would, and commits what `change` did.
inline void change_table(const std::filesystem::path& db, const char* table,
                         const std::function<void(MDB_txn*, MDB_dbi)>& change) {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 32);
    REQUIRE(mdb_env_open(env, db.c_str(), MDB_NOSUBDIR, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi dbi = 0;
    REQUIRE(mdb_dbi_open(txn, table, 0, &dbi) == 0);
    change(txn, dbi);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

}  // namespace abide::test
