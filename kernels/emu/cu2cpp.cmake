# cu2cpp.cmake: the source transform that lets a .cu file compile as C++ against the emulation
# headers (kernels/emu/include, lf_emu_cuda.h), without editing the .cu file. Run as
#   cmake -DIN=kernels/cuda/apply.cu -DOUT=<build>/emu/apply.cu.cpp -P kernels/emu/cu2cpp.cmake
# Rewrites, each within one line (so line numbers stay those of the .cu file, #line keeps its name):
#   k<<<g, b, smem, s>>>(args)          -> lf_emu::launcher(k, "k", g, b, smem, s)(args)
#   __shared__ __align__(A) T name[N];  -> T *name = lf_emu::shared_array<T>(&tag, N, A);
#   __shared__ T name[N];               -> T *name = lf_emu::shared_array<T>(&tag, N);
# (tag: a static char per declaration, so each block gets one array per declaration.)
file(READ "${IN}" src)
string(REGEX REPLACE "([A-Za-z_][A-Za-z_0-9]*)<<<([^>]*)>>>" "lf_emu::launcher(\\1, \"\\1\", \\2)" src "${src}")
string(REGEX REPLACE
       "__shared__[ \t]+__align__\\(([0-9]+)\\)[ \t]+([A-Za-z_][A-Za-z_0-9:]*)[ \t]+([A-Za-z_][A-Za-z_0-9]*)\\[([^;]*)\\];"
       "static char lf_emu_tag_\\3; \\2 *\\3 = lf_emu::shared_array<\\2>(&lf_emu_tag_\\3, \\4, \\1);" src "${src}")
string(REGEX REPLACE
       "__shared__[ \t]+([A-Za-z_][A-Za-z_0-9:]*)[ \t]+([A-Za-z_][A-Za-z_0-9]*)\\[([^;]*)\\];"
       "static char lf_emu_tag_\\2; \\1 *\\2 = lf_emu::shared_array<\\1>(&lf_emu_tag_\\2, \\3);" src "${src}")
if(src MATCHES "__shared__|<<<")
  message(FATAL_ERROR "cu2cpp: ${IN} has a __shared__ declaration or a launch this transform does not handle")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
