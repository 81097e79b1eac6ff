import t from 'tap';
import { IPV6_HLEN } from '../../common/codec/constants.js';
t.equal(IPV6_HLEN, 40);
