/*
 * test.h - the unit-test harness: CHECK records a failure and goes on;
 * TEST_MAIN runs the listed tests and prints "N passed, N failed".
 */
#ifndef RUNNEL_TEST_H
#define RUNNEL_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int test_checks_failed;
static int tests_passed, tests_failed;

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_checks_failed++; \
        } \
    } while (0)

#define CHECK_EQ_INT(a, b) do { \
        long long va_ = (long long)(a), vb_ = (long long)(b); \
        if (va_ != vb_) { \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, #a, #b, va_, vb_); \
            test_checks_failed++; \
        } \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#define RUN_TEST(fn) do { \
        int before_ = test_checks_failed; \
        fn(); \
        if (test_checks_failed == before_) tests_passed++; \
        else { tests_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
    } while (0)

#define TEST_REPORT() (printf("%d passed, %d failed\n", tests_passed, tests_failed), \
                       tests_failed ? 1 : 0)

#endif
