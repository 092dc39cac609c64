/* lf_test.h: the tiny test harness of lorafuse's C tests.
 *
 * LF_CHECK(cond, fmt, ...) records a failure with file:line and a message and carries on;
 * lf_test_finish() prints "N passed, N failed" (the closing line CI reads) and returns the exit code.
 * LF_SKIP() exits with 77, which CTest reports as skipped.
 * LF_TEST_SANITIZED is defined in the ASan build (tests that measure memory or time skip themselves).
 */
#ifndef LF_TEST_H
#define LF_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define LF_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LF_TEST_SANITIZED 1
#endif
#endif

static int lf_test_passed, lf_test_failed;

#define LF_CHECK(cond, ...)                                                                    \
    do {                                                                                       \
        if (cond) {                                                                            \
            lf_test_passed++;                                                                  \
        } else {                                                                               \
            lf_test_failed++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                    \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

#define LF_SKIP(why)                                                                           \
    do {                                                                                       \
        printf("skipped: %s\n", why);                                                          \
        exit(77);                                                                              \
    } while (0)

static inline int lf_test_finish(void) {
    printf("%d passed, %d failed\n", lf_test_passed, lf_test_failed);
    return lf_test_failed ? 1 : 0;
}

#endif
