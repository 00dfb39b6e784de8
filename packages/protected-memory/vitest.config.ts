import { mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

// --expose-gc: tests of what the garbage collector releases (views kept past close, dropped secrets) run gc().
export default mergeConfig(shared, { test: { execArgv: ['--expose-gc'] } });
